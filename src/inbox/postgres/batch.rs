//! Grouped inserts: every insert queued while the previous batch ran is
//! recorded with one statement and one commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::Backend;
use crate::inbox::store::{EventKey, Inserted, StoreError};

impl Backend {
    /// Records `jobs` with one statement and answers each of them.
    pub(super) async fn insert_batch(&self, mut jobs: Vec<Job>) {
        // A caller that gave up (timed out) is not recorded behind its back.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            return;
        }
        // Key order: concurrent batches (other instances) lock keys in the
        // same order, so they cannot deadlock.
        jobs.sort_by(|a, b| a.key.cmp(&b.key));
        match self.insert_rows(&jobs).await {
            Ok(recorded) => self.answer(jobs, &recorded).await,
            Err(StoreError::Backend(_)) if jobs.len() > 1 => {
                // The server refused the statement, so nothing was recorded:
                // retry row by row, so one bad row fails only its own caller.
                for job in jobs {
                    let result = self.insert_rows(std::slice::from_ref(&job)).await;
                    match result {
                        Ok(recorded) => self.answer(vec![job], &recorded).await,
                        Err(error) => {
                            let _ = job.reply.send(Err(error));
                        }
                    }
                }
            }
            Err(error) => {
                for job in jobs {
                    let _ = job.reply.send(Err(share(&error)));
                }
            }
        }
    }

    /// Inserts the first job of each key; returns the keys recorded.
    async fn insert_rows(&self, jobs: &[Job]) -> Result<Vec<EventKey>, StoreError> {
        let mut namespaces = Vec::with_capacity(jobs.len());
        let mut ids = Vec::with_capacity(jobs.len());
        let mut bodies = Vec::with_capacity(jobs.len());
        let mut hashes = Vec::with_capacity(jobs.len());
        let mut headers = Vec::with_capacity(jobs.len());
        let mut received = Vec::with_capacity(jobs.len());
        let mut previous: Option<&EventKey> = None;
        for job in jobs {
            // Jobs are sorted: a repeated key follows its first job.
            if previous == Some(&job.key) {
                continue;
            }
            previous = Some(&job.key);
            namespaces.push(job.key.namespace.as_str());
            ids.push(job.key.event_id.as_str());
            bodies.push(&job.body[..]);
            hashes.push(&job.hash[..]);
            headers.push(job.headers.as_str());
            received.push(job.received_at);
        }
        self.with_client(|client| async move {
            let statement = client.prepare_cached(&self.sql.insert).await?;
            let rows = client
                .query(
                    &statement,
                    &[&namespaces, &ids, &bodies, &hashes, &headers, &received],
                )
                .await?;
            let recorded = rows
                .iter()
                .map(|row| EventKey::new(row.get::<_, String>(0), row.get::<_, String>(1)))
                .collect();
            Ok((recorded, client))
        })
        .await
    }

    /// Answers sorted `jobs` once their batch committed, reading the body
    /// hashes of the keys that were already recorded.
    async fn answer(&self, jobs: Vec<Job>, recorded: &[EventKey]) {
        let recorded: std::collections::HashSet<&EventKey> = recorded.iter().collect();
        let conflicting: Vec<&EventKey> = {
            let mut keys: Vec<&EventKey> = jobs
                .iter()
                .map(|job| &job.key)
                .filter(|key| !recorded.contains(key))
                .collect();
            keys.dedup();
            keys
        };
        let stored = if conflicting.is_empty() {
            Ok(HashMap::new())
        } else {
            self.body_hashes(&conflicting).await
        };
        // The hash of the body each key was recorded with in this batch.
        let mut first: HashMap<EventKey, Vec<u8>> = HashMap::new();
        for job in jobs {
            let outcome = if recorded.contains(&job.key) {
                match first.get(&job.key) {
                    Some(hash) => Ok(Inserted::Duplicate {
                        same_body: *hash == job.hash,
                    }),
                    None => {
                        first.insert(job.key.clone(), job.hash.clone());
                        Ok(Inserted::New)
                    }
                }
            } else {
                match &stored {
                    Ok(hashes) => Ok(Inserted::Duplicate {
                        // A row purged since the conflict was finished: the
                        // delivery is a duplicate of it.
                        same_body: hashes.get(&job.key).is_none_or(|hash| *hash == job.hash),
                    }),
                    Err(error) => Err(share(error)),
                }
            };
            let _ = job.reply.send(outcome);
        }
    }

    async fn body_hashes(
        &self,
        keys: &[&EventKey],
    ) -> Result<HashMap<EventKey, Vec<u8>>, StoreError> {
        let namespaces: Vec<&str> = keys.iter().map(|key| key.namespace.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|key| key.event_id.as_str()).collect();
        self.with_client(|client| async move {
            let statement = client.prepare_cached(&self.sql.body_hashes).await?;
            let rows = client.query(&statement, &[&namespaces, &ids]).await?;
            let hashes = rows
                .iter()
                .map(|row| {
                    (
                        EventKey::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                        row.get::<_, Vec<u8>>(2),
                    )
                })
                .collect();
            Ok((hashes, client))
        })
        .await
    }
}

/// An insert waiting for its batch.
pub(super) struct Job {
    pub(super) key: EventKey,
    pub(super) body: Bytes,
    pub(super) hash: Vec<u8>,
    pub(super) headers: String,
    pub(super) received_at: SystemTime,
    pub(super) reply: oneshot::Sender<Result<Inserted, StoreError>>,
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

/// The same error for another caller of a batch (errors are not `Clone`).
fn share(error: &StoreError) -> StoreError {
    match error {
        StoreError::Timeout(after) => StoreError::Timeout(*after),
        StoreError::Unavailable(source) => StoreError::unavailable(source.to_string()),
        StoreError::Backend(source) => StoreError::backend(source.to_string()),
        StoreError::Overloaded => StoreError::Overloaded,
    }
}
