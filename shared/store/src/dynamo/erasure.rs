//! Erasing a contact on DynamoDB (`domain::erasure`): every step idempotent, each deletion a
//! plain DeleteItem (deleting twice is fine), the ledger rows rewritten in place and the cost
//! counters moved to the erased ids under a condition on the totals read.

use super::*;
use domain::erasure::{ConversationTrace, Receipt};

#[async_trait]
impl ErasureStore for DynamoStore {
    async fn erasure_receipt(&self, ws: &WorkspaceId, contact: ContactId) -> Result<Option<Receipt>, StoreError> {
        self.get_as("erasure receipt", &keys::erasure_receipt(ws, contact)).await
    }

    async fn begin_erasure(&self, c: &Contact, at: OffsetDateTime) -> Result<(), StoreError> {
        let ws = &c.workspace;
        for identity in &c.identities {
            self.delete_pointer(&keys::identity(ws, identity), c.id).await?;
            self.delete_plain(&keys::consent(ws, &identity.clone().proven())).await?;
        }
        if let Some(name) = c.name.as_deref().and_then(domain::contacts::name_key) {
            self.delete_plain(&keys::contact_name(ws, &name, c.id)).await?;
        }
        self.delete_plain(&keys::current_conversation(ws, c.id)).await?;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::contact(ws, c.id))))
            .update_expression("SET erasing = if_not_exists(erasing, :at)")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", s(rfc3339(at)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // A contact already gone (a finished erasure ran meanwhile) has nothing left to mark.
        conditional(res, |o| o.consumed_capacity()).map(drop)
    }

    async fn erase_conversation(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        conversation: ConversationId,
        trace: &ConversationTrace,
        forget_contact: bool,
    ) -> Result<(), StoreError> {
        // First the contact's slot, while it still holds this conversation (a newer one stays): a
        // message arriving from here on starts a new conversation instead of joining this one.
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::current_conversation(ws, contact))))
            .condition_expression("conversation_id = :c")
            .expression_attribute_values(":c", s(conversation.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        conditional(res, |o| o.consumed_capacity())?;
        // Cost rows next: they are found through the messages, which go after.
        for (message, at) in &trace.messages {
            let day = at.to_offset(time::UtcOffset::UTC).date();
            for pk in keys::ledger_message_partitions(ws, day, *message) {
                for it in self.query_all(&pk, &keys::ledger_message_prefix(*message)).await? {
                    let k = item_key(&it)?;
                    let mut entry: LedgerEntry = decode("ledger entry", it)?;
                    if !domain::erasure::anonymise(&mut entry, forget_contact) {
                        continue;
                    }
                    self.put_plain(item(&k, "ledger_entry", &entry)?).await?;
                }
            }
        }
        for month in trace.months() {
            self.move_counter(
                ws,
                month,
                &Dimension::Conversation { conversation },
                &Dimension::Conversation { conversation: ConversationId::ERASED },
            )
            .await?;
        }
        for (provider, id) in &trace.provider_ids {
            self.delete_plain(&keys::provider_message(ws, provider, id)).await?;
        }
        for (agent, key) in &trace.idempotency {
            self.delete_plain(&keys::idempotency(ws, agent, key)).await?;
        }
        self.delete_plain(&keys::waiting(ws, conversation)).await?;
        for it in self.query_all(&keys::conversation(ws, conversation).pk, "").await? {
            self.delete_plain(&item_key(&it)?).await?;
        }
        self.delete_plain(&keys::contact_conversation(ws, contact, conversation)).await
    }

    async fn expired_conversations(
        &self,
        ws: &WorkspaceId,
        before: OffsetDateTime,
        limit: u16,
    ) -> Result<Vec<Conversation>, StoreError> {
        let view = IndexView {
            index: keys::INDEX_BY_STATUS,
            pk_attr: keys::GSI1PK,
            sk_attr: keys::GSI1SK,
            partitions: keys::status_partitions(ws, domain::model::ConversationStatus::Resolved),
        };
        let cut = keys::activity_sort(before, ConversationId::ERASED);
        let (items, _) = self.index_scatter(&view, Some(("<", cut)), true, limit).await?;
        items.into_iter().map(|it| decode("conversation", it)).collect()
    }

    async fn forget_visitor(&self, ws: &WorkspaceId, visitor: &VisitorId) -> Result<(), StoreError> {
        for it in self.query_all(&keys::visitor_partition(ws, visitor), "").await? {
            let k = item_key(&it)?;
            if let Some(conn) = k.sk.strip_prefix(keys::VISITOR_CONNECTION_PREFIX) {
                let id = domain::ConnectionId::parse(conn).map_err(|e| corrupt("visitor socket", e))?;
                self.delete_plain(&keys::visitor_connection_pointer(&id)).await?;
            }
            self.delete_plain(&k).await?;
        }
        Ok(())
    }

    async fn scrub_audit(&self, entry: &domain::audit::AuditEntry) -> Result<(), StoreError> {
        let mut scrubbed = entry.clone();
        scrubbed.details = serde_json::json!({ "erased": true });
        self.put_plain(audit_item(&scrubbed)?).await
    }

    async fn delete_delivery(&self, ws: &WorkspaceId, endpoint: &str, msg_id: &str) -> Result<(), StoreError> {
        self.delete_plain(&keys::hook_delivery(ws, endpoint, msg_id)).await
    }

    async fn finish_erasure(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        months: &[Month],
        receipt: &Receipt,
        audit: &domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        for month in months {
            self.move_counter(
                ws,
                *month,
                &Dimension::Contact { contact },
                &Dimension::Contact { contact: ContactId::ERASED },
            )
            .await?;
        }
        let contact_key = keys::contact(ws, contact);
        for it in self.query_all(&contact_key.pk, "").await? {
            let k = item_key(&it)?;
            if k != contact_key {
                self.delete_plain(&k).await?;
            }
        }
        let delete = build(
            "contact delete",
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&contact_key)))
                .condition_expression("attribute_exists(PK)")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            put_always(&self.table, item(&keys::erasure_receipt(ws, contact), "erasure_receipt", receipt)?)?,
            put_always(&self.table, audit_item(audit)?)?,
        ];
        self.transact(items, None).await
    }
}

impl DynamoStore {
    /// Deletes an identity's pointer only while it names `contact` (a merge may have moved it).
    async fn delete_pointer(&self, k: &Key, contact: ContactId) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(k)))
            .condition_expression("contact_id = :c")
            .expression_attribute_values(":c", s(contact.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        conditional(res, |o| o.consumed_capacity()).map(drop)
    }

    /// Moves a per-conversation or per-contact cost counter to another (the erased id's): one
    /// transaction deletes it under the totals read and adds them there; a concurrent change to
    /// the counter makes it read again.
    async fn move_counter(
        &self,
        ws: &WorkspaceId,
        month: Month,
        from: &Dimension,
        to: &Dimension,
    ) -> Result<(), StoreError> {
        // Per-conversation and per-contact counters are not sharded: any message id names them.
        let any = MessageId::ERASED;
        let from_key = keys::cost_counter(ws, month, from, any);
        let to_key = keys::cost_counter(ws, month, to, any);
        self.move_counter_item(&from_key, &to_key, Some(to)).await.map(drop)
    }

    /// Moves a counter's totals from `from` to `to` (created with `dimension`, or the moved one's):
    /// one transaction deletes `from` on the totals read and adds them to `to`, retried while
    /// writers still add to `from`. `false` if there was nothing to move.
    pub(super) async fn move_counter_item(
        &self,
        from: &Key,
        to: &Key,
        dimension: Option<&Dimension>,
    ) -> Result<bool, StoreError> {
        for _ in 0..5 {
            let Some(it) = self.get(from).await? else { return Ok(false) };
            let currency = it.get("currency").cloned().unwrap_or_else(|| s("USD"));
            let counter = decode::<CounterItem>("cost counter", it)?;
            let t = counter.totals();
            let values = HashMap::from([
                (":m".to_owned(), n(t.messages)),
                (":p".to_owned(), n(t.provider_micros)),
                (":a".to_owned(), n(t.aws_micros)),
                (":x".to_owned(), n(t.actual_micros)),
                (":r".to_owned(), n(t.reconciled)),
            ]);
            let delete = build(
                "counter delete",
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(from)))
                    .condition_expression(
                        "messages = :m AND provider_micros = :p AND aws_micros = :a AND actual_micros = :x \
                         AND (reconciled = :r OR attribute_not_exists(reconciled))",
                    )
                    .set_expression_attribute_values(Some(values))
                    .build(),
            )?;
            let add = self.counter_add(to, dimension.unwrap_or(&counter.dimension), currency, t)?;
            match self.transact(vec![TransactWriteItem::builder().delete(delete).build(), add], None).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }
}

pub(super) fn item_key(it: &Item) -> Result<Key, StoreError> {
    let get = |name: &str| {
        it.get(name).and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| corrupt("item key", format!("no {name}")))
    };
    Ok(Key { pk: get(keys::PK)?, sk: get(keys::SK)? })
}
