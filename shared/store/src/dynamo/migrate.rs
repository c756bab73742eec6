//! `migrate-table`: an existing table moved to the sharded key design, item by item, while the
//! new code runs. Idempotent and resumable: a run scans one segment from where the last stopped,
//! and an item already moved is not found again.
//!
//! - A conversation whose index keys are unsharded gets the sharded ones (`UpdateItem`, on its
//!   version: a conversation written since by the new code already has them and is left alone).
//! - A cost counter of a month's single partition moves to its shard: one transaction deletes it
//!   (on the totals read) and adds those totals to the sharded counter, so a counter the new code
//!   has started meanwhile is summed, never overwritten.
//! - A ledger entry of a day's single partition moves to its shard (put if absent, delete the old,
//!   in one transaction).
//! - A conversation waiting in the single queue partition moves to its shard, as a ledger entry.
//! - An agent's connection of the workspace's single list (`WS#<ws>#CONN`) is written where each
//!   audience finds it (`put_connection`), then deleted from the list. A socket is at most two hours
//!   old: until the run, a tab opened before the upgrade gets only what every agent gets.
//! - A budget of the workspace's single partition (`WS#<ws>#BUDGET`) is written to every replica
//!   (unless one set since the upgrade is there), then deleted. Until then replies and alerts see
//!   no budget for it.
//! - An agent's roster entry that still holds their whole state (before the roster was split from
//!   the loads) is adopted (`roster.rs`): profile and load to the agent's own state item, the entry
//!   rewritten as a profile copy, in one transaction. Until then routing offers that agent no new
//!   work, unless their presence or profile changes first (which adopts the entry too).
//! - An hourly analytics aggregate of a kind's single partition merges into shard 0 (both on their
//!   versions, in one transaction).
//!
//! Until it has run, reports of the months and days before the upgrade miss what is unmoved, and
//! existing conversations are missing from the workspace-wide views until moved or next written.

use super::*;

/// What one run did, and where the next resumes (`None`: the segment is done).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Migrated {
    pub scanned: u64,
    pub conversations: u64,
    pub counters: u64,
    pub ledger_entries: u64,
    pub aggregates: u64,
    pub waiting: u64,
    /// Agents' connections of the workspace's single list, now kept by audience.
    #[serde(default)]
    pub connections: u64,
    /// Budgets of the workspace's single partition, now in every replica.
    #[serde(default)]
    pub budgets: u64,
    /// Agents' roster entries that held their whole state, now split from their load.
    #[serde(default)]
    pub agents: u64,
    /// The key after which the next run of this segment starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Key>,
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = ser.serialize_struct("Key", 2)?;
        st.serialize_field(keys::PK, &self.pk)?;
        st.serialize_field(keys::SK, &self.sk)?;
        st.end()
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "PK")]
            pk: String,
            #[serde(rename = "SK")]
            sk: String,
        }
        let r = Raw::deserialize(de)?;
        Ok(Key { pk: r.pk, sk: r.sk })
    }
}

impl DynamoStore {
    /// Moves every legacy item of scan segment `segment` of `segments`, starting after `start`,
    /// until the segment ends or `out_of_time` says stop.
    pub async fn migrate_keys(
        &self,
        segment: i32,
        segments: i32,
        start: Option<Key>,
        out_of_time: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<Migrated, StoreError> {
        let mut done = Migrated::default();
        let mut start = start.map(|k| key_map(&k));
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .segment(segment)
                .total_segments(segments)
                .filter_expression("#e IN (:conv, :counter, :ledger, :stats, :waiting, :connection, :budget, :agent)")
                .expression_attribute_names("#e", keys::ENTITY)
                .expression_attribute_values(":conv", s("conversation"))
                .expression_attribute_values(":counter", s("cost_counter"))
                .expression_attribute_values(":ledger", s("ledger_entry"))
                .expression_attribute_values(":stats", s("stats"))
                .expression_attribute_values(":waiting", s("waiting"))
                .expression_attribute_values(":connection", s("connection"))
                .expression_attribute_values(":budget", s("budget"))
                .expression_attribute_values(":agent", s("agent"))
                .set_exclusive_start_key(start.take())
                .limit(200)
                .send()
                .await
                .map_err(classify)?;
            done.scanned += u64::from(out.scanned_count().max(0) as u32);
            for it in out.items().iter().cloned() {
                let k = erasure::item_key(&it)?;
                match it.get(keys::ENTITY).and_then(|v| v.as_s().ok()).map(String::as_str) {
                    Some("conversation") => done.conversations += u64::from(self.migrate_conversation(it).await?),
                    Some("cost_counter") => {
                        if let Some(to) = keys::legacy::cost_counter(&k.pk, &k.sk) {
                            done.counters += u64::from(self.move_counter_item(&k, &to, None).await?);
                        }
                    }
                    Some("stats") => {
                        if let Some(to) = keys::legacy::stats(&k.pk, &k.sk) {
                            done.aggregates += u64::from(self.migrate_aggregate(&k, &to).await?);
                        }
                    }
                    Some("ledger_entry") => {
                        if let Some(to) = keys::legacy::ledger_entry(&k.pk, &k.sk) {
                            done.ledger_entries += u64::from(self.move_item(it, &k, &to).await?);
                        }
                    }
                    Some("connection") if keys::legacy::connection_list(&k.pk) => {
                        let c: domain::realtime::Connection = decode("connection", it)?;
                        self.put_connection(&c).await?;
                        self.delete_plain(&k).await?;
                        done.connections += 1;
                    }
                    Some("budget") => {
                        let Some(ws) = keys::legacy::budget_list(&k.pk) else { continue };
                        let b: Budget = decode("budget", it)?;
                        // A budget set since the upgrade is in the replicas already, and newer.
                        if !self.budgets(&ws).await?.iter().any(|held| held.scope == b.scope) {
                            self.put_budget(&ws, &b).await?;
                        }
                        self.delete_plain(&k).await?;
                        done.budgets += 1;
                    }
                    Some("agent") => {
                        let Some(ws) = keys::legacy::roster(&k.pk) else { continue };
                        done.agents += u64::from(self.adopt_legacy_entry(&ws, it).await?);
                    }
                    Some("waiting") => {
                        if let Some(to) = keys::legacy::waiting(&k.pk, &k.sk) {
                            done.waiting += u64::from(self.move_item(it, &k, &to).await?);
                        }
                    }
                    _ => {}
                }
            }
            let Some(last) = out.last_evaluated_key() else { return Ok(done) };
            if out_of_time() {
                done.next = Some(erasure::item_key(last)?);
                return Ok(done);
            }
            start = Some(last.clone());
        }
    }

    /// The sharded index keys for a conversation that lacks them; `false` if it had them (or a
    /// newer write gave them meanwhile).
    async fn migrate_conversation(&self, it: Item) -> Result<bool, StoreError> {
        let c: Conversation = decode("conversation", it.clone())?;
        let want = conversation_item(&c)?;
        let attrs = [keys::GSI1PK, keys::GSI2PK, keys::GSI3PK];
        if attrs.iter().all(|a| it.get(*a) == want.get(*a)) {
            return Ok(false);
        }
        let mut set = vec![];
        let mut values = HashMap::from([(":v".to_owned(), n(c.version))]);
        for (i, a) in attrs.iter().enumerate() {
            if let Some(v) = want.get(*a) {
                set.push(format!("{a} = :g{i}"));
                values.insert(format!(":g{i}"), v.clone());
            }
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::conversation(&c.workspace, c.id))))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression("version = :v")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        Ok(conditional(res, |_| None)?.is_some())
    }

    /// A legacy aggregate merged into its shard and deleted, both on the versions read; retried
    /// while the analytics consumer writes to the shard.
    async fn migrate_aggregate(&self, from: &Key, to: &Key) -> Result<bool, StoreError> {
        use domain::analytics::Aggregate;
        for _ in 0..5 {
            let Some(old) = self.get(from).await? else { return Ok(false) };
            let old: Aggregate = decode("analytics aggregate", old)?;
            let current: Option<Aggregate> = self.get_as("analytics aggregate", to).await?;
            let expected = current.as_ref().map(|c| c.version);
            let mut merged = current.unwrap_or_default();
            merged.merge(&old);
            merged.version = expected.unwrap_or(0) + 1;
            let write = match expected {
                None => put(&self.table, item(to, "stats", &merged)?, NOT_EXISTS, None)?,
                Some(v) => put(
                    &self.table,
                    item(to, "stats", &merged)?,
                    "version = :v",
                    Some(HashMap::from([(":v".to_owned(), n(v))])),
                )?,
            };
            let delete = build(
                "legacy aggregate delete",
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(from)))
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", n(old.version))
                    .build(),
            )?;
            match self.transact(vec![write, TransactWriteItem::builder().delete(delete).build()], None).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// A legacy item that is written once (a ledger entry, a queued conversation) put under its
    /// sharded key (unless there already) and deleted.
    async fn move_item(&self, mut it: Item, from: &Key, to: &Key) -> Result<bool, StoreError> {
        it.extend(key_map(to));
        let items = vec![put(&self.table, it, NOT_EXISTS, None)?, self.delete_item(from)?];
        match self.transact(items, Some(0)).await {
            Ok(()) => Ok(true),
            // Moved by an earlier run that stopped before the delete cannot happen (one
            // transaction); an entry already at the new key means the old is a leftover copy.
            Err(StoreError::Duplicate) => {
                self.delete_plain(from).await?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}
