//! The roster split from the agents' load (docs/scaling.md, "Routing's roster").
//!
//! Each agent's routing state (presence, teams, skills, capacity, load, last assignment) is one
//! item in a partition of its own (`keys::agent`): an assignment's take and a release are
//! conditional writes there, so a workspace's assignments no longer queue on one key. The roster
//! (`keys::roster_entry`) keeps a copy of each profile without the load, written only when the
//! profile or presence changes, to each of 16 replicas; routing reads one replica (remembered for a
//! few seconds where the settings cache is on) to choose a few candidates, then reads only their
//! state. Every processor container reads it every few seconds: on one partition, a storm's few
//! hundred containers would take it past its read limit.
//!
//! Each state write bumps the item's revision (`rev`); the roster copy is written on the revision
//! and only over an older one, so two racing changes leave the newer copy.
//!
//! Before the split, an agent's entry in the workspace's single roster partition
//! (`keys::legacy::roster_entry`) was their whole state. Such an entry is adopted the first time the
//! agent's state is written or released ([`DynamoStore::adopt`]) or by `migrate-table`: its profile
//! and load go to the state item (the load added to what is there), its copies to the replicas, and
//! the entry is deleted, in one transaction conditional on the entry still being there. Until
//! adopted, the agent is offered no new work by routing (the admin's listing still shows them).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;

use super::*;
use domain::routing::AgentState;

/// The attribute holding a state item's revision and its roster copy's.
pub(super) const REV: &str = "rev";

/// The revision an item holds (0 when it holds none).
pub(super) fn revision(it: &Item) -> u64 {
    it.get(REV).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl DynamoStore {
    /// The roster entry for `state` at revision `rev` in `replica`: its profile, the load left out.
    fn roster_item(ws: &WorkspaceId, state: &AgentState, rev: u64, replica: u32) -> Result<Item, StoreError> {
        let profile = AgentState { load: 0, last_assigned_at: None, ..state.clone() };
        let mut it = item(&keys::roster_entry(ws, &state.id, replica), "roster", &profile)?;
        it.insert(REV.into(), n(rev));
        Ok(it)
    }

    /// Copies `state` at revision `rev` into every replica of the roster, each unless a newer
    /// revision is there (concurrent puts: a replica is eventually the newest copy whatever the order).
    pub(super) async fn write_roster_entry(
        &self,
        ws: &WorkspaceId,
        state: &AgentState,
        rev: u64,
    ) -> Result<(), StoreError> {
        let puts = (0..keys::READ_REPLICAS).map(|r| async move {
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::roster_item(ws, state, rev, r)?))
                .condition_expression("attribute_not_exists(#rev) OR #rev < :rev")
                .expression_attribute_names("#rev", REV)
                .expression_attribute_values(":rev", n(rev))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            // A failed condition: a newer change has written its copy already.
            conditional(res, |o| o.consumed_capacity()).map(drop)
        });
        futures::future::try_join_all(puts).await?;
        if let Some(c) = &self.settings {
            c.forget(&c.roster, ws);
        }
        Ok(())
    }

    /// Applies `update` to `agent`'s state item. When the agent has none yet, their legacy roster
    /// entry (if any) is adopted first, so the update lands on the state it held.
    pub(super) async fn update_agent_state(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        update: UpdateItemFluentBuilder,
    ) -> Result<UpdateItemOutput, StoreError> {
        let res = update
            .clone()
            .condition_expression("attribute_exists(PK)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if let Some(out) = conditional(res, |o| o.consumed_capacity())? {
            return Ok(out);
        }
        self.adopt(ws, agent).await?;
        let out = update.return_consumed_capacity(ReturnConsumedCapacity::Total).send().await.map_err(classify)?;
        metered(out.consumed_capacity(), true);
        Ok(out)
    }

    /// Adopts `agent`'s legacy roster entry; `false` if there was none to adopt.
    pub(super) async fn adopt(&self, ws: &WorkspaceId, agent: &AgentId) -> Result<bool, StoreError> {
        match self.get(&keys::legacy::roster_entry(ws, agent)).await? {
            Some(it) => self.adopt_legacy_entry(ws, it).await,
            None => Ok(false),
        }
    }

    /// A legacy roster entry `it` (the agent's whole state) split into the agent's state item and
    /// its roster copies, and deleted, in one transaction conditional on it still being there: the
    /// load is added to what the state item holds, every other field kept where the state item has
    /// it. `false` if another run adopted it first.
    pub(super) async fn adopt_legacy_entry(&self, ws: &WorkspaceId, it: Item) -> Result<bool, StoreError> {
        let since = it.get("presence_since").cloned();
        let legacy: AgentState = decode("agent", it)?;
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = vec![];
        let mut keep = |name: &str, value: AttributeValue| {
            names.insert(format!("#{name}"), name.to_owned());
            values.insert(format!(":{name}"), value);
            sets.push(format!("#{name} = if_not_exists(#{name}, :{name})"));
        };
        keep("id", s(legacy.id.as_str()));
        keep(keys::ENTITY, s("agent"));
        keep("presence", to_attribute_value(legacy.presence).map_err(|e| corrupt("presence", e))?);
        keep("teams", to_attribute_value(&legacy.teams).map_err(|e| corrupt("teams", e))?);
        keep("skills", to_attribute_value(&legacy.skills).map_err(|e| corrupt("skills", e))?);
        keep("capacity", n(legacy.capacity));
        if let Some(at) = legacy.last_assigned_at {
            keep("last_assigned_at", s(super::rfc3339(at)?));
        }
        if let Some(since) = since {
            keep("presence_since", since);
        }
        names.insert("#load".into(), "load".into());
        names.insert("#rev".into(), REV.into());
        values.insert(":held".into(), n(legacy.load));
        values.insert(":zero".into(), n(0));
        values.insert(":one".into(), n(1));
        sets.push("#load = if_not_exists(#load, :zero) + :held".into());
        sets.push("#rev = if_not_exists(#rev, :zero) + :one".into());
        let state = build(
            "agent state",
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::agent(ws, &legacy.id))))
                .update_expression(format!("SET {}", sets.join(", ")))
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        let gone = build(
            "legacy roster entry",
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::legacy::roster_entry(ws, &legacy.id))))
                .condition_expression("attribute_exists(PK)")
                .build(),
        )?;
        let mut items =
            vec![TransactWriteItem::builder().update(state).build(), TransactWriteItem::builder().delete(gone).build()];
        for r in 0..keys::READ_REPLICAS {
            // Revision 0: any change made through the new code (revision 1 on) is newer.
            items.push(put_always(&self.table, Self::roster_item(ws, &legacy, 0, r)?)?);
        }
        match self.transact(items, None).await {
            Ok(()) => {
                if let Some(c) = &self.settings {
                    c.forget(&c.roster, ws);
                }
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The roster's profiles (loads zero), read fresh from one replica.
    pub(super) async fn roster_fresh(&self, ws: &WorkspaceId) -> Result<Vec<AgentState>, StoreError> {
        let items = self.query_all(&keys::roster_partition(ws, keys::any_replica()), "").await?;
        items
            .into_iter()
            .map(|it| decode::<AgentState>("agent", it).map(|a| AgentState { load: 0, last_assigned_at: None, ..a }))
            .collect()
    }

    /// The state items of `ids` (at most 100 a BatchGetItem), those that exist.
    pub(super) async fn states_of(&self, ws: &WorkspaceId, ids: &[AgentId]) -> Result<Vec<AgentState>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let wanted: Vec<Key> = chunk.iter().map(|a| keys::agent(ws, a)).collect();
            for it in self.get_many(&wanted).await?.into_iter().flatten() {
                out.push(decode("agent", it)?);
            }
        }
        Ok(out)
    }

    /// Every agent's whole state: the roster's members from their state items, and the agents of
    /// legacy entries not adopted yet from those (each is the whole state).
    pub(super) async fn all_agents(&self, ws: &WorkspaceId) -> Result<Vec<AgentState>, StoreError> {
        let (roster, old) = (keys::roster_partition(ws, keys::any_replica()), keys::legacy::roster_partition(ws));
        let (entries, legacy) = futures::try_join!(self.query_all(&roster, ""), self.query_all(&old, ""))?;
        let ids: Vec<AgentId> = entries
            .iter()
            .filter_map(|it| it.get("id").and_then(|v| v.as_s().ok()))
            .filter_map(|id| AgentId::parse(id).ok())
            .collect();
        let mut states = self.states_of(ws, &ids).await?;
        for it in legacy {
            let whole: AgentState = decode("agent", it)?;
            if !states.iter().any(|a| a.id == whole.id) {
                states.push(whole);
            }
        }
        states.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(states)
    }
}
