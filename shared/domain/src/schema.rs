//! OpenAPI schemas for the types serde writes as plain strings (validated ids, addresses, money):
//! the derive would describe their inner representation, the API shows a string.

/// `impl ToSchema` for a type serialised as a string, with its description.
#[macro_export]
macro_rules! string_schema {
    ($t:ty, $desc:expr) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($desc))
                    .into()
            }
        }
        impl utoipa::ToSchema for $t {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($t))
            }
        }
    };
}
