//! Grouped inserts: every insert queued while the previous batch ran is
//! recorded with one statement and one commit, signatures included.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::Backend;
use crate::backend::pg::millis;
use crate::inbox::store::{EventKey, Inserted, NewEvent, StoreError};

/// An insert waiting for its batch.
pub(super) struct Job {
    key: EventKey,
    body: Bytes,
    hash: Vec<u8>,
    headers: String,
    received_at: SystemTime,
    traceparent: Option<String>,
    lane: Option<String>,
    /// The signature to admit with the event, and how long to keep its
    /// record (milliseconds; `None`: as long as the event).
    signature: Option<(Bytes, Option<i64>)>,
    /// Its place in the order the batch's inserts arrived.
    arrival: usize,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

impl Job {
    /// `event`, to be answered on `reply`.
    pub(super) fn new(
        event: NewEvent,
        reply: oneshot::Sender<Result<Inserted, StoreError>>,
    ) -> Self {
        Self {
            hash: Sha256::digest(&event.body).to_vec(),
            headers: serde_json::to_string(&event.headers).unwrap_or_else(|_| "[]".to_owned()),
            signature: event
                .signature
                .map(|record| (record.signature, record.keep.map(millis))),
            key: event.key,
            body: event.body,
            received_at: event.received_at,
            traceparent: event.traceparent,
            lane: event.lane,
            arrival: 0,
            reply,
        }
    }

    fn answer(self, outcome: Result<Inserted, StoreError>) {
        // A caller that went away does not need its answer.
        let _ = self.reply.send(outcome);
    }
}

/// The grouped-commit task: takes every insert queued while the previous
/// batch ran, up to `max_group`. Ends when every clone of the store is gone.
pub(super) async fn write_batches(
    backend: Arc<Backend>,
    mut receiver: mpsc::UnboundedReceiver<Job>,
    max_group: usize,
) {
    let mut batch = Vec::with_capacity(max_group);
    while receiver.recv_many(&mut batch, max_group).await > 0 {
        backend.insert_batch(std::mem::take(&mut batch)).await;
    }
}

/// The batch's signatures: one group per (namespace, signature), admitted
/// for the id of its first insert (the group's "claimant").
struct Plan {
    /// Each job's group (jobs in key order); `None` for a job without a
    /// signature.
    group_of: Vec<Option<usize>>,
    /// The groups in (namespace, signature) order, the order their records
    /// are locked in.
    groups: Vec<Group>,
}

struct Group {
    namespace: String,
    signature: Bytes,
    /// The index of the job that claims the signature for the batch.
    claimant: usize,
}

impl Plan {
    /// Groups the signatures of `jobs` (sorted by key, each with its arrival).
    fn new(jobs: &[Job]) -> Self {
        let mut by_arrival: Vec<usize> = (0..jobs.len()).collect();
        by_arrival.sort_by_key(|&index| jobs[index].arrival);
        let mut claimants: HashMap<(&str, &[u8]), usize> = HashMap::new();
        for index in by_arrival {
            if let Some((signature, _)) = &jobs[index].signature {
                claimants
                    .entry((jobs[index].key.namespace.as_str(), &signature[..]))
                    .or_insert(index);
            }
        }
        let mut groups: Vec<((&str, &[u8]), usize)> = claimants.into_iter().collect();
        groups.sort_unstable();
        let position: HashMap<(&str, &[u8]), usize> = groups
            .iter()
            .enumerate()
            .map(|(position, (group, _))| (*group, position))
            .collect();
        let group_of = jobs
            .iter()
            .map(|job| {
                let (signature, _) = job.signature.as_ref()?;
                position
                    .get(&(job.key.namespace.as_str(), &signature[..]))
                    .copied()
            })
            .collect();
        let groups = groups
            .into_iter()
            .map(|((namespace, _), claimant)| Group {
                namespace: namespace.to_owned(),
                signature: jobs[claimant]
                    .signature
                    .as_ref()
                    .map(|(signature, _)| signature.clone())
                    .unwrap_or_default(),
                claimant,
            })
            .collect();
        Self { group_of, groups }
    }

    /// Whether the job at `index` may be recorded in this round: it has no
    /// signature, or the same id as its group's claimant.
    fn candidate(&self, jobs: &[Job], index: usize) -> bool {
        self.group_of[index].is_none_or(|group| {
            jobs[self.groups[group].claimant].key.event_id == jobs[index].key.event_id
        })
    }
}

/// What one statement did.
struct Recorded {
    /// The keys it recorded.
    keys: HashSet<EventKey>,
    /// The groups whose signature it admitted.
    admitted: HashSet<usize>,
}

/// What becomes of one insert of a round.
enum Fate {
    /// Its signature (if any) is admitted for its id: `New` or `Duplicate`.
    Admitted,
    /// Another id holds its signature.
    Replayed,
    /// Another id of the batch claimed its signature and was refused, and the
    /// holder is its own id (or the record is gone since): it goes again in
    /// the next round.
    Again,
    /// The holder of its signature could not be read.
    Failed(StoreError),
}

impl Backend {
    /// Records `jobs` and answers each of them.
    ///
    /// Signatures first: the first insert of the batch with a given
    /// signature claims it for its id; an insert of another id with the same
    /// signature is `Replayed` if the claim succeeds. If the claim fails
    /// (another id holds a live record), the claimant is `Replayed` and so
    /// is every insert with that signature, except those of the holder's own
    /// id, which go again in a second round (where they keep the record).
    pub(super) async fn insert_batch(&self, mut jobs: Vec<Job>) {
        // A caller that gave up (timed out) is not recorded behind its back.
        jobs.retain(|job| !job.reply.is_closed());
        for (arrival, job) in jobs.iter_mut().enumerate() {
            job.arrival = arrival;
        }
        // Key order: concurrent batches (other instances) lock keys in the
        // same order, so they cannot deadlock. The sort is stable: repeats of
        // a key follow its first insert.
        jobs.sort_by(|a, b| a.key.cmp(&b.key));
        // Every round answers at least the claimant of each group, so this ends.
        while !jobs.is_empty() {
            jobs = self.round(jobs).await;
        }
    }

    /// Records `jobs` with one statement, answers them, and returns those
    /// that go again.
    async fn round(&self, jobs: Vec<Job>) -> Vec<Job> {
        let plan = Plan::new(&jobs);
        match self.record(&jobs, &plan).await {
            Ok(recorded) => self.answer(jobs, &plan, &recorded).await,
            Err(StoreError::Backend(_)) if jobs.len() > 1 => {
                // The server refused the statement, so nothing was recorded:
                // retry row by row, so one bad row fails only its own caller.
                let mut again = Vec::new();
                for job in jobs {
                    let single = vec![job];
                    let plan = Plan::new(&single);
                    match self.record(&single, &plan).await {
                        Ok(recorded) => again.extend(self.answer(single, &plan, &recorded).await),
                        Err(error) => {
                            for job in single {
                                job.answer(Err(share(&error)));
                            }
                        }
                    }
                }
                again
            }
            Err(error) => {
                for job in jobs {
                    job.answer(Err(share(&error)));
                }
                Vec::new()
            }
        }
    }

    /// Admits the signatures of `plan` and inserts, for each key, the first
    /// candidate job whose signature was admitted (or that has none).
    async fn record(&self, jobs: &[Job], plan: &Plan) -> Result<Recorded, StoreError> {
        let mut namespaces = Vec::with_capacity(jobs.len());
        let mut ids = Vec::with_capacity(jobs.len());
        let mut bodies = Vec::with_capacity(jobs.len());
        let mut hashes = Vec::with_capacity(jobs.len());
        let mut headers = Vec::with_capacity(jobs.len());
        let mut received = Vec::with_capacity(jobs.len());
        let mut traceparents: Vec<Option<&str>> = Vec::with_capacity(jobs.len());
        let mut guards: Vec<Option<&[u8]>> = Vec::with_capacity(jobs.len());
        let mut order: Vec<i32> = Vec::with_capacity(jobs.len());
        let mut lanes: Vec<Option<&str>> = Vec::with_capacity(jobs.len());
        // A key whose candidate has no signature is recorded with it (if new):
        // its later jobs need not be sent.
        let mut settled: Option<&EventKey> = None;
        for (index, job) in jobs.iter().enumerate() {
            if settled == Some(&job.key) || !plan.candidate(jobs, index) {
                continue;
            }
            if job.signature.is_none() {
                settled = Some(&job.key);
            }
            namespaces.push(job.key.namespace.as_str());
            ids.push(job.key.event_id.as_str());
            bodies.push(&job.body[..]);
            hashes.push(&job.hash[..]);
            headers.push(job.headers.as_str());
            received.push(job.received_at);
            traceparents.push(job.traceparent.as_deref());
            guards.push(job.signature.as_ref().map(|(signature, _)| &signature[..]));
            order.push(i32::try_from(index).unwrap_or(i32::MAX));
            lanes.push(job.lane.as_deref());
        }
        // The lanes the batch inserts into: locked (in a fixed order) before
        // the insert and refreshed after it, in its transaction.
        let mut touched: Vec<(&str, &str)> = namespaces
            .iter()
            .zip(&lanes)
            .filter_map(|(namespace, lane)| Some((*namespace, (*lane)?)))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let lane_namespaces: Vec<&str> = touched.iter().map(|(namespace, _)| *namespace).collect();
        let lane_names: Vec<&str> = touched.iter().map(|(_, lane)| *lane).collect();
        let mut sig_namespaces = Vec::with_capacity(plan.groups.len());
        let mut signatures = Vec::with_capacity(plan.groups.len());
        let mut sig_ids = Vec::with_capacity(plan.groups.len());
        let mut keeps = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            let claimant = &jobs[group.claimant];
            sig_namespaces.push(group.namespace.as_str());
            signatures.push(&group.signature[..]);
            sig_ids.push(claimant.key.event_id.as_str());
            keeps.push(claimant.signature.as_ref().and_then(|(_, keep)| *keep));
        }
        let params_admit: [&(dyn ToSql + Sync); 14] = [
            &namespaces,
            &ids,
            &bodies,
            &hashes,
            &headers,
            &received,
            &sig_namespaces,
            &signatures,
            &sig_ids,
            &keeps,
            &guards,
            &order,
            &traceparents,
            &lanes,
        ];
        let params_insert: [&(dyn ToSql + Sync); 8] = [
            &namespaces,
            &ids,
            &bodies,
            &hashes,
            &headers,
            &received,
            &traceparents,
            &lanes,
        ];
        let (params_insert, params_admit) = (&params_insert, &params_admit);
        let (lane_namespaces, lane_names) = (&lane_namespaces, &lane_names);
        let touched = &touched;
        let rows = self
            .with_client(|mut client| async move {
                let (statement, params): (&str, &[&(dyn ToSql + Sync)]) = if plan.groups.is_empty()
                {
                    (&self.sql.insert, params_insert)
                } else {
                    (&self.sql.admit, params_admit)
                };
                let rows = if touched.is_empty() {
                    let statement = client.prepare_cached(statement).await?;
                    client.query(&statement, params).await?
                } else {
                    let tx = client.transaction().await?;
                    let lock = tx.prepare_cached(&self.sql.lock_lanes).await?;
                    tx.query(&lock, &[lane_namespaces, lane_names]).await?;
                    let statement = tx.prepare_cached(statement).await?;
                    let rows = tx.query(&statement, params).await?;
                    let refresh = tx.prepare_cached(&self.sql.refresh).await?;
                    tx.query(&refresh, &[lane_namespaces, lane_names]).await?;
                    tx.commit().await?;
                    rows
                };
                Ok((rows, client))
            })
            .await?;
        let groups: HashMap<(&str, &[u8]), usize> = plan
            .groups
            .iter()
            .enumerate()
            .map(|(index, group)| ((group.namespace.as_str(), &group.signature[..]), index))
            .collect();
        let mut recorded = Recorded {
            keys: HashSet::new(),
            admitted: HashSet::new(),
        };
        for row in &rows {
            let unreadable = |_| StoreError::backend("unreadable answer to the inbox insert");
            let namespace: &str = row.try_get(1).map_err(unreadable)?;
            let event_id: &str = row.try_get(2).map_err(unreadable)?;
            if row.try_get::<_, bool>(0).map_err(unreadable)? {
                recorded.keys.insert(EventKey::new(namespace, event_id));
            } else {
                let signature: &[u8] = row.try_get(3).map_err(unreadable)?;
                if let Some(group) = groups.get(&(namespace, signature)) {
                    recorded.admitted.insert(*group);
                }
            }
        }
        Ok(recorded)
    }

    /// Answers `jobs` (sorted by key) once their statement committed, and
    /// returns those that go again.
    async fn answer(&self, jobs: Vec<Job>, plan: &Plan, recorded: &Recorded) -> Vec<Job> {
        let fates = self.fates(&jobs, plan, recorded).await;
        // Keys whose admitted inserts found an earlier record: their body
        // hashes tell `same_body`.
        let conflicting: Vec<&EventKey> = {
            let mut keys: Vec<&EventKey> = jobs
                .iter()
                .zip(&fates)
                .filter(|(job, fate)| {
                    matches!(fate, Fate::Admitted) && !recorded.keys.contains(&job.key)
                })
                .map(|(job, _)| &job.key)
                .collect();
            keys.dedup();
            keys
        };
        let stored = if conflicting.is_empty() {
            Ok(HashMap::new())
        } else {
            self.body_hashes(&conflicting).await
        };
        // The hash of the body each key was recorded with in this round.
        let mut first: HashMap<EventKey, Vec<u8>> = HashMap::new();
        let mut again = Vec::new();
        for (job, fate) in jobs.into_iter().zip(fates) {
            let outcome = match fate {
                Fate::Again => {
                    again.push(job);
                    continue;
                }
                Fate::Replayed => Ok(Inserted::Replayed),
                Fate::Failed(error) => Err(error),
                Fate::Admitted if recorded.keys.contains(&job.key) => match first.get(&job.key) {
                    Some(hash) => Ok(Inserted::Duplicate {
                        same_body: *hash == job.hash,
                    }),
                    None => {
                        first.insert(job.key.clone(), job.hash.clone());
                        Ok(Inserted::New)
                    }
                },
                Fate::Admitted => match &stored {
                    Ok(hashes) => Ok(Inserted::Duplicate {
                        // A row purged since the conflict was finished: the
                        // delivery is a duplicate of it.
                        same_body: hashes.get(&job.key).is_none_or(|hash| *hash == job.hash),
                    }),
                    Err(error) => Err(share(error)),
                },
            };
            job.answer(outcome);
        }
        again
    }

    /// What becomes of each of `jobs`, given what their statement did.
    async fn fates(&self, jobs: &[Job], plan: &Plan, recorded: &Recorded) -> Vec<Fate> {
        // Refused groups with inserts of other ids than the claimant's: the
        // holder's id decides for those.
        let mut refused: Vec<usize> = jobs
            .iter()
            .zip(&plan.group_of)
            .filter_map(|(job, group)| {
                let group = (*group)?;
                let claimant = &jobs[plan.groups[group].claimant].key.event_id;
                (!recorded.admitted.contains(&group) && job.key.event_id != *claimant)
                    .then_some(group)
            })
            .collect();
        refused.sort_unstable();
        refused.dedup();
        let holders = if refused.is_empty() {
            Ok(HashMap::new())
        } else {
            self.holders(plan, &refused).await
        };
        (0..jobs.len())
            .map(|index| {
                let Some(group) = plan.group_of[index] else {
                    return Fate::Admitted;
                };
                let claimant = &jobs[plan.groups[group].claimant].key.event_id;
                let id = &jobs[index].key.event_id;
                match (recorded.admitted.contains(&group), id == claimant) {
                    (true, true) => Fate::Admitted,
                    (true, false) | (false, true) => Fate::Replayed,
                    (false, false) => match &holders {
                        Ok(holders) => match holders.get(&group) {
                            Some(holder) if holder != id => Fate::Replayed,
                            // The holder's own id, or the record is gone (it
                            // expired or was purged since): try again.
                            _ => Fate::Again,
                        },
                        Err(error) => Fate::Failed(share(error)),
                    },
                }
            })
            .collect()
    }

    /// The ids holding live records of the signatures of `groups`.
    async fn holders(
        &self,
        plan: &Plan,
        groups: &[usize],
    ) -> Result<HashMap<usize, String>, StoreError> {
        let namespaces: Vec<&str> = groups
            .iter()
            .map(|&group| plan.groups[group].namespace.as_str())
            .collect();
        let signatures: Vec<&[u8]> = groups
            .iter()
            .map(|&group| &plan.groups[group].signature[..])
            .collect();
        let rows = self
            .with_client(|client| async move {
                let statement = client.prepare_cached(&self.sql.holders).await?;
                let rows = client
                    .query(&statement, &[&namespaces, &signatures])
                    .await?;
                Ok((rows, client))
            })
            .await?;
        let wanted: HashMap<(&str, &[u8]), usize> = groups
            .iter()
            .map(|&group| {
                let entry = &plan.groups[group];
                ((entry.namespace.as_str(), &entry.signature[..]), group)
            })
            .collect();
        let mut holders = HashMap::new();
        for row in &rows {
            let unreadable = |_| StoreError::backend("unreadable signature record");
            let namespace: &str = row.try_get(0).map_err(unreadable)?;
            let signature: &[u8] = row.try_get(1).map_err(unreadable)?;
            let event_id: String = row.try_get(2).map_err(unreadable)?;
            if let Some(&group) = wanted.get(&(namespace, signature)) {
                holders.insert(group, event_id);
            }
        }
        Ok(holders)
    }

    async fn body_hashes(
        &self,
        keys: &[&EventKey],
    ) -> Result<HashMap<EventKey, Vec<u8>>, StoreError> {
        let namespaces: Vec<&str> = keys.iter().map(|key| key.namespace.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|key| key.event_id.as_str()).collect();
        let rows = self
            .with_client(|client| async move {
                let statement = client.prepare_cached(&self.sql.body_hashes).await?;
                let rows = client.query(&statement, &[&namespaces, &ids]).await?;
                Ok((rows, client))
            })
            .await?;
        let mut hashes = HashMap::with_capacity(rows.len());
        for row in &rows {
            let unreadable = |_| StoreError::backend("unreadable body hash in the inbox table");
            hashes.insert(
                EventKey::new(
                    row.try_get::<_, String>(0).map_err(unreadable)?,
                    row.try_get::<_, String>(1).map_err(unreadable)?,
                ),
                row.try_get::<_, Vec<u8>>(2).map_err(unreadable)?,
            );
        }
        Ok(hashes)
    }
}

/// The same error for another caller of a batch (errors are not `Clone`).
fn share(error: &StoreError) -> StoreError {
    match error {
        StoreError::Timeout(after) => StoreError::Timeout(*after),
        StoreError::Unavailable(source) => StoreError::unavailable(source.to_string()),
        StoreError::Backend(source) => StoreError::backend(source.to_string()),
        StoreError::Overloaded => StoreError::Overloaded,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admission::SignatureRecord;

    fn job(arrival: usize, id: &str, signature: Option<&'static [u8]>) -> Job {
        let event = NewEvent {
            key: EventKey::new("ns", id),
            body: Bytes::from_static(b"{}"),
            headers: Vec::new(),
            received_at: SystemTime::UNIX_EPOCH,
            signature: signature.map(|signature| SignatureRecord {
                signature: Bytes::from_static(signature),
                keep: Some(Duration::from_secs(300)),
            }),
            traceparent: None,
            lane: None,
        };
        let mut job = Job::new(event, oneshot::channel().0);
        job.arrival = arrival;
        job
    }

    #[test]
    fn the_first_insert_of_a_signature_claims_it_for_the_batch() {
        // Sorted by key, as a batch is; arrivals tell who came first.
        let jobs = vec![
            job(3, "a", Some(b"s2")),
            job(1, "b", Some(b"s1")),
            job(4, "b", Some(b"s1")),
            job(0, "c", Some(b"s1")),
            job(2, "d", None),
        ];
        let plan = Plan::new(&jobs);
        let claimants: Vec<(&[u8], &str)> = plan
            .groups
            .iter()
            .map(|group| (&group.signature[..], &*jobs[group.claimant].key.event_id))
            .collect();
        // In (namespace, signature) order, each claimed by its first arrival.
        assert_eq!(claimants, [(&b"s1"[..], "c"), (&b"s2"[..], "a")]);
        assert_eq!(plan.group_of, [Some(1), Some(0), Some(0), Some(0), None]);
        let candidates: Vec<bool> = (0..jobs.len())
            .map(|index| plan.candidate(&jobs, index))
            .collect();
        assert_eq!(candidates, [true, false, false, true, true]);
    }
}
