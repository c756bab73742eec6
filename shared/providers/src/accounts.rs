//! Each workspace's provider accounts, resolved per request from the vault and cached per
//! container: a Telegram bot by its id, a Twilio account by the number it owns. The stack's own
//! account (its stack-wide secret) is the fallback where it applies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::credentials::CredentialKey;
use domain::ports::{CredentialVault, VaultError};

/// How long a container trusts what it read: a rotated or disconnected account takes effect within it.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

type Parse<T> = Box<dyn Fn(&str, &str) -> Option<T> + Send + Sync>;
type Fallback<T> = Box<dyn Fn(&str) -> Option<Arc<T>> + Send + Sync>;
/// What a container read of an account, and when (`None`: nobody connected it).
type Cached<T> = (Instant, Option<Arc<T>>);

pub struct Accounts<T> {
    key: fn(&str) -> CredentialKey,
    vault: Option<Arc<dyn CredentialVault>>,
    /// (account, stored secret) → credentials; `None` refuses a secret that is not the account's.
    parse: Parse<T>,
    /// The stack's credentials for an account with none of its own.
    fallback: Fallback<T>,
    cache: Mutex<HashMap<String, Cached<T>>>,
    ttl: Duration,
}

impl<T> Accounts<T> {
    pub fn new(
        key: fn(&str) -> CredentialKey,
        vault: Option<Arc<dyn CredentialVault>>,
        parse: impl Fn(&str, &str) -> Option<T> + Send + Sync + 'static,
        fallback: impl Fn(&str) -> Option<Arc<T>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            key,
            vault,
            parse: Box::new(parse),
            fallback: Box::new(fallback),
            cache: Mutex::default(),
            ttl: CACHE_TTL,
        }
    }

    /// The credentials of `account`: its own (the vault), else the stack's fallback, else `None`.
    pub async fn get(&self, account: &str) -> Result<Option<Arc<T>>, VaultError> {
        if let Some((at, hit)) = self.cache.lock().expect("accounts lock").get(account) {
            if at.elapsed() < self.ttl {
                return Ok(hit.clone());
            }
        }
        let own = match &self.vault {
            Some(vault) => {
                vault.get(&(self.key)(account)).await?.and_then(|raw| (self.parse)(account, &raw)).map(Arc::new)
            }
            None => None,
        };
        let found = own.or_else(|| (self.fallback)(account));
        self.cache.lock().expect("accounts lock").insert(account.to_owned(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Drops what this container remembers of an account (after connecting or disconnecting it here).
    pub fn forget(&self, account: &str) {
        self.cache.lock().expect("accounts lock").remove(account);
    }
}

/// Twilio accounts by the number they own: a workspace's own account (connected with its number),
/// else the stack's account, which serves every other number.
pub type TwilioNumbers = Accounts<domain::credentials::TwilioAccount>;

pub fn twilio_numbers(
    vault: Option<Arc<dyn CredentialVault>>,
    stack: Option<domain::credentials::TwilioAccount>,
) -> TwilioNumbers {
    let stack = stack.map(Arc::new);
    Accounts::new(
        CredentialKey::twilio,
        vault,
        |_number: &str, raw: &str| domain::credentials::TwilioAccount::from_secret(raw),
        move |_number: &str| stack.clone(),
    )
}

/// Page access tokens by Page or Instagram account id: a workspace's own (connected with its
/// Page), else the stack's `META_CREDENTIALS` `page_tokens`.
pub type MetaPages = Accounts<String>;

pub fn meta_pages(vault: Option<Arc<dyn CredentialVault>>, stack: HashMap<String, String>) -> MetaPages {
    Accounts::new(
        CredentialKey::meta,
        vault,
        |_page: &str, raw: &str| domain::credentials::parse_page_secret(raw),
        move |page: &str| stack.get(page).cloned().map(Arc::new),
    )
}

/// WhatsApp access tokens by phone number id: a workspace's own (connected with its number, the
/// token of its own WhatsApp Business Account), else the stack's `WHATSAPP_CREDENTIALS`
/// `access_token`, which serves every number of the stack's own business account.
pub type WhatsAppNumbers = Accounts<String>;

pub fn whatsapp_numbers(vault: Option<Arc<dyn CredentialVault>>, stack: Option<String>) -> WhatsAppNumbers {
    let stack = stack.map(Arc::new);
    Accounts::new(
        CredentialKey::whatsapp,
        vault,
        |_number: &str, raw: &str| domain::credentials::parse_whatsapp_secret(raw),
        move |_number: &str| stack.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryVault;
    use domain::credentials::TwilioAccount;
    use domain::WorkspaceId;

    #[tokio::test]
    async fn a_number_with_its_own_account_uses_it_and_every_other_number_the_stacks() {
        let vault = Arc::new(MemoryVault::default());
        let own =
            TwilioAccount::parse("AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef").unwrap();
        let stack =
            TwilioAccount::parse("ACffffffffffffffffffffffffffffffff", "ffffffffffffffffffffffffffffffff").unwrap();
        let ws = WorkspaceId::parse("acme").unwrap();
        vault.put(&CredentialKey::twilio("+14155550100"), &ws, &own.secret()).await.unwrap();
        let numbers = twilio_numbers(Some(vault.clone()), Some(stack.clone()));
        assert_eq!(*numbers.get("+14155550100").await.unwrap().unwrap(), own);
        assert_eq!(*numbers.get("+14155550199").await.unwrap().unwrap(), stack);
        assert!(twilio_numbers(None, None).get("+14155550199").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_whatsapp_number_with_its_own_token_uses_it_and_every_other_number_the_stacks() {
        let vault = Arc::new(MemoryVault::default());
        let ws = WorkspaceId::parse("acme").unwrap();
        let own = "EAAG-acme-system-user-token-0001";
        vault
            .put(&CredentialKey::whatsapp("106540352242922"), &ws, &domain::credentials::whatsapp_secret(own))
            .await
            .unwrap();
        let numbers = whatsapp_numbers(Some(vault.clone()), Some("EAAG-stack-token".into()));
        assert_eq!(numbers.get("106540352242922").await.unwrap().as_deref().map(String::as_str), Some(own));
        assert_eq!(
            numbers.get("100000000000001").await.unwrap().as_deref().map(String::as_str),
            Some("EAAG-stack-token")
        );
        // A secret that is not a token is refused, not trusted: the stack's serves instead.
        vault.put(&CredentialKey::whatsapp("100000000000002"), &ws, "not json").await.unwrap();
        assert_eq!(
            numbers.get("100000000000002").await.unwrap().as_deref().map(String::as_str),
            Some("EAAG-stack-token")
        );
        assert!(whatsapp_numbers(None, None).get("100000000000001").await.unwrap().is_none());
    }
}
