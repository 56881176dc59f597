use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::store::{
    ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus, InboxStore, Inserted,
    ListFilter, NewEvent, Purged, StoreError,
};
use crate::clock::{Clock, SystemClock};

/// An inbox in process memory, for tests and for trying things out.
///
/// Nothing survives a restart, so [`is_durable`](InboxStore::is_durable) is
/// `false`: the accept path then answers only after the handler succeeded,
/// unless told to acknowledge first.
#[derive(Debug)]
pub struct MemoryInbox {
    events: Mutex<HashMap<EventKey, Entry>>,
    /// The replay guard's records: (namespace, signature) -> (event id,
    /// expiry; `None` while the event is recorded). Locked after `events`.
    signatures: Mutex<Signatures>,
    clock: Arc<dyn Clock>,
}

/// The replay guard's records: (namespace, signature) -> (event id, expiry).
type Signatures = HashMap<(String, Bytes), (String, Option<SystemTime>)>;

#[derive(Debug, Clone)]
struct Entry {
    status: EventStatus,
    body: Option<Bytes>,
    headers: Vec<(String, String)>,
    received_at: SystemTime,
    updated_at: SystemTime,
    next_attempt_at: SystemTime,
    lease_until: SystemTime,
    attempts: u32,
    fence: u64,
    last_error: Option<String>,
}

impl MemoryInbox {
    /// An empty inbox on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty inbox on `clock`.
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            events: Mutex::new(HashMap::new()),
            signatures: Mutex::new(HashMap::new()),
            clock: Arc::new(clock),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<EventKey, Entry>> {
        // Every update below is a plain assignment, so a panic elsewhere
        // cannot leave an entry half-written.
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn signatures(&self) -> MutexGuard<'_, Signatures> {
        self.signatures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to the entry if it is processing under `fence`.
    fn exit(
        &self,
        key: &EventKey,
        fence: u64,
        change: impl FnOnce(&mut Entry, SystemTime),
    ) -> bool {
        let now = self.clock.now();
        let mut events = self.lock();
        match events.get_mut(key) {
            Some(entry) if entry.status == EventStatus::Processing && entry.fence == fence => {
                change(entry, now);
                entry.updated_at = now;
                true
            }
            _ => false,
        }
    }
}

impl Default for MemoryInbox {
    fn default() -> Self {
        Self::new()
    }
}

fn record(key: &EventKey, entry: &Entry) -> EventRecord {
    EventRecord {
        key: key.clone(),
        status: entry.status,
        attempts: entry.attempts,
        received_at: entry.received_at,
        updated_at: entry.updated_at,
        next_attempt_at: (entry.status == EventStatus::Pending).then_some(entry.next_attempt_at),
        last_error: entry.last_error.clone(),
        body: entry.body.clone(),
    }
}

#[async_trait]
impl InboxStore for MemoryInbox {
    fn is_durable(&self) -> bool {
        false
    }

    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        if let Some(record) = &event.signature {
            let mut signatures = self.signatures();
            let key = (event.key.namespace.clone(), record.signature.clone());
            let live =
                |(_, expires): &(String, Option<SystemTime>)| expires.is_none_or(|at| at > now);
            match signatures.get(&key) {
                Some(held) if live(held) && held.0 != event.key.event_id => {
                    return Ok(Inserted::Replayed);
                }
                Some(held) if live(held) => {}
                _ => {
                    let expires = record.keep.map(|keep| now + keep);
                    signatures.insert(key, (event.key.event_id.clone(), expires));
                }
            }
        }
        if let Some(entry) = events.get(&event.key) {
            let same_body = entry.body.as_ref().is_none_or(|body| *body == event.body);
            return Ok(Inserted::Duplicate { same_body });
        }
        events.insert(
            event.key,
            Entry {
                status: EventStatus::Pending,
                body: Some(event.body),
                headers: event.headers,
                received_at: event.received_at,
                updated_at: now,
                next_attempt_at: now,
                lease_until: now,
                attempts: 0,
                fence: 0,
                last_error: None,
            },
        );
        Ok(Inserted::New)
    }

    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        let mut due: Vec<(&EventKey, &mut Entry)> = Vec::new();
        for (key, entry) in events.iter_mut() {
            let expired = entry.status == EventStatus::Processing && entry.lease_until <= now;
            if expired && entry.attempts >= options.max_attempts {
                entry.status = EventStatus::Dead;
                entry.updated_at = now;
                entry.last_error = Some("lease expired with the retry budget spent".to_owned());
            } else if expired
                || (entry.status == EventStatus::Pending && entry.next_attempt_at <= now)
            {
                due.push((key, entry));
            }
        }
        due.sort_by_key(|(_, entry)| entry.next_attempt_at);
        Ok(due
            .into_iter()
            .take(options.limit)
            .map(|(key, entry)| {
                entry.status = EventStatus::Processing;
                entry.attempts += 1;
                entry.fence += 1;
                entry.lease_until = now + options.lease;
                entry.updated_at = now;
                ClaimedEvent {
                    key: key.clone(),
                    body: entry.body.clone().unwrap_or_default(),
                    headers: entry.headers.clone(),
                    received_at: entry.received_at,
                    attempt: entry.attempts,
                    fence: entry.fence,
                }
            })
            .collect())
    }

    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: u64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.exit(key, fence, |entry, now| entry.lease_until = now + lease))
    }

    async fn complete(&self, key: &EventKey, fence: u64) -> Result<bool, StoreError> {
        Ok(self.exit(key, fence, |entry, _| entry.status = EventStatus::Succeeded))
    }

    async fn retry(
        &self,
        key: &EventKey,
        fence: u64,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.exit(key, fence, |entry, now| {
            entry.status = EventStatus::Pending;
            entry.next_attempt_at = now + delay;
            entry.last_error = Some(error.to_owned());
        }))
    }

    async fn kill(&self, key: &EventKey, fence: u64, error: &str) -> Result<bool, StoreError> {
        Ok(self.exit(key, fence, |entry, _| {
            entry.status = EventStatus::Dead;
            entry.last_error = Some(error.to_owned());
        }))
    }

    async fn give_back(&self, key: &EventKey, fence: u64) -> Result<bool, StoreError> {
        Ok(self.exit(key, fence, |entry, now| {
            entry.status = EventStatus::Pending;
            entry.attempts = entry.attempts.saturating_sub(1);
            entry.next_attempt_at = now;
        }))
    }

    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        match events.get_mut(key) {
            Some(entry) if entry.status == EventStatus::Dead && entry.body.is_some() => {
                entry.status = EventStatus::Pending;
                entry.attempts = 0;
                entry.next_attempt_at = now;
                entry.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.lock().get(key).map(|entry| record(key, entry)))
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        let events = self.lock();
        let mut records: Vec<EventRecord> = events
            .iter()
            .filter(|(_, entry)| filter.status.is_none_or(|status| entry.status == status))
            .filter(|(_, entry)| filter.since.is_none_or(|since| entry.received_at >= since))
            .map(|(key, entry)| record(key, entry))
            .collect();
        records.sort_by(|a, b| {
            b.received_at
                .cmp(&a.received_at)
                .then_with(|| a.key.cmp(&b.key))
        });
        records.truncate(filter.limit);
        Ok(records)
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|entry| entry.status == EventStatus::Pending)
            .count() as u64)
    }

    async fn purge(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
    ) -> Result<Purged, StoreError> {
        let mut events = self.lock();
        let mut purged = Purged::default();
        events.retain(|_, entry| {
            let finished = matches!(entry.status, EventStatus::Succeeded | EventStatus::Dead);
            if finished && entry.received_at < events_before {
                purged.events += 1;
                return false;
            }
            if finished && entry.received_at < payloads_before && entry.body.take().is_some() {
                purged.payloads += 1;
            }
            true
        });
        // Records that outlived their window, or whose event is gone.
        let now = self.clock.now();
        self.signatures()
            .retain(|(namespace, _), (event_id, expires)| match expires {
                Some(at) => *at > now,
                None => events.contains_key(&EventKey::new(namespace.as_str(), event_id.as_str())),
            });
        Ok(purged)
    }
}
