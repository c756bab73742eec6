//! Meta's reviews of WhatsApp templates, applied to the registry: each finds its template by
//! Meta's id, is applied only if it is newer than the last one applied, and is written only if no
//! other review was written in between (a conditional write, retried on a fresh read). A review
//! of a template this stack never submitted (made in WhatsApp Manager and not registered) is
//! skipped.

use domain::channels::templates::TemplateReview;
use domain::ports::TemplateStore;

use crate::Error;

/// What happened to each review.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    /// Older than one already applied (a redelivery, or Meta's order).
    pub stale: usize,
    /// No template of ours has that id.
    pub unknown: usize,
}

const ATTEMPTS: usize = 5;

pub async fn apply_reviews(store: &dyn TemplateStore, reviews: &[TemplateReview]) -> Result<Applied, Error> {
    let mut out = Applied::default();
    'reviews: for review in reviews {
        for _ in 0..ATTEMPTS {
            let Some((ws, mut template)) = store.whatsapp_template_by_meta_id(&review.meta_id).await? else {
                tracing::info!(template = %review.name, language = %review.language, "a review of a template this stack did not submit: skipped");
                out.unknown += 1;
                continue 'reviews;
            };
            let before = template.reviewed_at;
            if !template.apply(review) {
                out.stale += 1;
                continue 'reviews;
            }
            if store.replace_whatsapp_template(&ws, &template, before).await? {
                tracing::info!(workspace = %ws, template = %template.name, status = ?template.status, "Meta's review applied");
                out.applied += 1;
                continue 'reviews;
            }
        }
        return Err(Error::Contended(format!("template {} kept changing", review.meta_id)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::templates::{ReviewChange, TemplateStatus, WhatsAppTemplate};
    use domain::finance::pricing::WhatsappCategory;
    use domain::{AgentId, WorkspaceId};
    use store::MemoryStore;
    use time::macros::datetime;

    fn review(status: TemplateStatus, at: time::OffsetDateTime) -> TemplateReview {
        TemplateReview {
            meta_id: "77".into(),
            name: "order_update".into(),
            language: "en_US".into(),
            at,
            change: ReviewChange::Status { status, reason: None },
        }
    }

    #[tokio::test]
    async fn reviews_apply_in_meta_order_and_unknown_ones_are_skipped() {
        let store = MemoryStore::new();
        let ws = WorkspaceId::parse("acme").unwrap();
        let by = AgentId::parse("ada").unwrap();
        let at = datetime!(2026-12-01 0:00 UTC);
        let mut t = WhatsAppTemplate::new(
            "order_update",
            "en_US",
            WhatsappCategory::Utility,
            "Hi",
            TemplateStatus::Pending,
            by,
            at,
        )
        .unwrap();
        t.meta_id = Some("77".into());
        store.put_whatsapp_template(&ws, &t).await.unwrap();

        let approved = review(TemplateStatus::Approved, at + time::Duration::minutes(5));
        let paused = review(TemplateStatus::Paused, at + time::Duration::days(3));
        let mut stranger = approved.clone();
        stranger.meta_id = "78".into();
        let out = apply_reviews(&store, &[paused.clone(), approved.clone(), stranger]).await.unwrap();
        assert_eq!(out, Applied { applied: 1, stale: 1, unknown: 1 });
        let held = store.whatsapp_template(&ws, "order_update", "en_US").await.unwrap().unwrap();
        assert_eq!(held.status, TemplateStatus::Paused, "the later review wins whatever the order of arrival");
        // Redelivered: nothing changes.
        assert_eq!(
            apply_reviews(&store, &[paused]).await.unwrap().applied,
            1,
            "the same instant applies again, idempotently"
        );
        assert_eq!(
            store.whatsapp_template(&ws, "order_update", "en_US").await.unwrap().unwrap().status,
            TemplateStatus::Paused
        );
    }
}
