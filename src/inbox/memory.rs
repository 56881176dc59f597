use crate::backend::FenceToken;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::store::{
    Attempt, AttemptOutcome, ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus,
    InboxStore, Inserted, LaneState, ListFilter, MAX_HISTORY, NewEvent, PurgeBatch, Purged,
    Selection, StatusCounts, StoreError,
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
    /// The events of each lane, by insertion sequence. Locked after `events`.
    lanes: Mutex<Lanes>,
    clock: Arc<dyn Clock>,
}

/// The replay guard's records: (namespace, signature) -> (event id, expiry).
type Signatures = HashMap<(String, Bytes), (String, Option<SystemTime>)>;

/// (namespace, lane) -> insertion sequence -> event id, and the next
/// sequence.
#[derive(Debug, Default)]
struct Lanes {
    members: HashMap<(String, String), BTreeMap<u64, String>>,
    next_seq: u64,
}

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
    traceparent: Option<String>,
    /// The most recent attempts, oldest first.
    history: VecDeque<Attempt>,
    /// An operator replayed the event: its next attempt is a replay.
    replay_next: bool,
    /// Its lane, if any.
    lane: Option<String>,
    /// Whether it may be claimed as far as its lane goes: always for an
    /// unordered event; for one in a lane, whether it is the lane's head.
    ready: bool,
    /// A dead event of a lane that no longer blocks it.
    skipped: bool,
}

impl Entry {
    /// Ends the running attempt, if any.
    fn end_attempt(&mut self, now: SystemTime, outcome: AttemptOutcome, error: Option<&str>) {
        if let Some(last) = self.history.back_mut()
            && last.outcome.is_none()
        {
            *last = last.clone().ended(now, outcome, error.map(str::to_owned));
        }
    }

    /// Starts an attempt under the entry's current count and fence.
    fn start_attempt(&mut self, now: SystemTime) {
        if self.history.len() == MAX_HISTORY {
            self.history.pop_front();
        }
        let replay = std::mem::take(&mut self.replay_next);
        self.history.push_back(Attempt::new(
            self.attempts,
            FenceToken::new(self.fence),
            now,
            replay,
        ));
    }

    fn finished(&self) -> bool {
        matches!(self.status, EventStatus::Succeeded | EventStatus::Dead)
    }

    /// Whether later events of its lane must wait for it.
    fn blocks(&self) -> bool {
        match self.status {
            EventStatus::Pending | EventStatus::Processing => true,
            EventStatus::Dead => !self.skipped,
            EventStatus::Succeeded => false,
        }
    }

    /// A finished or requeued event back to `pending`, due at `now`, with
    /// a fresh budget. In a lane it waits for the lane's refresh.
    fn back_to_pending(&mut self, now: SystemTime) {
        self.status = EventStatus::Pending;
        self.attempts = 0;
        self.next_attempt_at = now;
        self.updated_at = now;
        self.skipped = false;
        self.ready = self.lane.is_none();
    }

    /// Whether the entry is in `selection` (the key's namespace is checked
    /// by the caller).
    fn selected(&self, selection: &Selection) -> bool {
        selection
            .received_after
            .is_none_or(|after| self.received_at >= after)
            && selection
                .received_before
                .is_none_or(|before| self.received_at < before)
            && selection.error_contains.as_deref().is_none_or(|text| {
                self.last_error
                    .as_deref()
                    .is_some_and(|error| error.contains(text))
            })
    }
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
            lanes: Mutex::new(Lanes::default()),
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

    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to the entry if it is processing under `fence`,
    /// then brings its lane up to date.
    fn exit(
        &self,
        key: &EventKey,
        fence: u64,
        change: impl FnOnce(&mut Entry, SystemTime),
    ) -> bool {
        let now = self.clock.now();
        let mut events = self.lock();
        let lane = match events.get_mut(key) {
            Some(entry) if entry.status == EventStatus::Processing && entry.fence == fence => {
                change(entry, now);
                entry.updated_at = now;
                entry.lane.clone()
            }
            _ => return false,
        };
        if let Some(lane) = lane {
            refresh(&mut events, &self.lanes(), &key.namespace, &lane);
        }
        true
    }
}

/// Marks the head of a lane claimable and every other pending event of it
/// not: the head is its earliest event that is pending, processing, or
/// dead and not skipped; it is claimable if it is pending and no event of
/// the lane is processing.
fn refresh(events: &mut HashMap<EventKey, Entry>, lanes: &Lanes, namespace: &str, lane: &str) {
    let Some(members) = lanes.members.get(&(namespace.to_owned(), lane.to_owned())) else {
        return;
    };
    let mut head = None;
    let mut busy = false;
    for (seq, event_id) in members {
        if let Some(entry) = events.get(&EventKey::new(namespace, event_id.as_str())) {
            if head.is_none() && entry.blocks() {
                head = Some(*seq);
            }
            busy |= entry.status == EventStatus::Processing;
        }
    }
    for (seq, event_id) in members {
        if let Some(entry) = events.get_mut(&EventKey::new(namespace, event_id.as_str()))
            && entry.status == EventStatus::Pending
        {
            entry.ready = !busy && head == Some(*seq);
        }
    }
}

impl Default for MemoryInbox {
    fn default() -> Self {
        Self::new()
    }
}

fn record(key: &EventKey, entry: &Entry, with_history: bool) -> EventRecord {
    EventRecord {
        key: key.clone(),
        status: entry.status,
        attempts: entry.attempts,
        received_at: entry.received_at,
        updated_at: entry.updated_at,
        next_attempt_at: (entry.status == EventStatus::Pending).then_some(entry.next_attempt_at),
        last_error: entry.last_error.clone(),
        body: entry.body.clone(),
        traceparent: entry.traceparent.clone(),
        history: if with_history {
            entry.history.iter().cloned().collect()
        } else {
            Vec::new()
        },
        lane: entry.lane.clone(),
        lane_state: entry
            .lane
            .as_ref()
            .map(|_| LaneState::of(entry.status, entry.ready, entry.skipped)),
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
        let key = event.key.clone();
        if let Some(lane) = &event.lane {
            let mut lanes = self.lanes();
            let seq = lanes.next_seq;
            lanes.next_seq += 1;
            lanes
                .members
                .entry((key.namespace.clone(), lane.clone()))
                .or_default()
                .insert(seq, key.event_id.clone());
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
                traceparent: event.traceparent,
                history: VecDeque::new(),
                replay_next: false,
                ready: event.lane.is_none(),
                lane: event.lane,
                skipped: false,
            },
        );
        if let Some(lane) = events.get(&key).and_then(|entry| entry.lane.clone()) {
            refresh(&mut events, &self.lanes(), &key.namespace, &lane);
        }
        Ok(Inserted::New)
    }

    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        let mut killed: Vec<(String, String)> = Vec::new();
        for (key, entry) in events.iter_mut() {
            let expired = entry.status == EventStatus::Processing && entry.lease_until <= now;
            if expired && entry.attempts >= options.max_attempts {
                entry.end_attempt(now, AttemptOutcome::Expired, None);
                entry.status = EventStatus::Dead;
                entry.updated_at = now;
                entry.last_error = Some("lease expired with the retry budget spent".to_owned());
                if let Some(lane) = &entry.lane {
                    killed.push((key.namespace.clone(), lane.clone()));
                }
            }
        }
        if !killed.is_empty() {
            let lanes = self.lanes();
            for (namespace, lane) in killed {
                refresh(&mut events, &lanes, &namespace, &lane);
            }
        }
        let mut due: Vec<(&EventKey, &mut Entry)> = Vec::new();
        for (key, entry) in events.iter_mut() {
            let expired = entry.status == EventStatus::Processing && entry.lease_until <= now;
            if expired {
                entry.end_attempt(now, AttemptOutcome::Expired, None);
            }
            if expired
                || (entry.status == EventStatus::Pending
                    && entry.ready
                    && entry.next_attempt_at <= now)
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
                entry.start_attempt(now);
                ClaimedEvent {
                    key: key.clone(),
                    body: entry.body.clone().unwrap_or_default(),
                    headers: entry.headers.clone(),
                    received_at: entry.received_at,
                    attempt: entry.attempts,
                    fence: FenceToken::new(entry.fence),
                    traceparent: entry.traceparent.clone(),
                    replay: entry.history.back().is_some_and(|attempt| attempt.replay),
                    lane: entry.lane.clone(),
                }
            })
            .collect())
    }

    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        Ok(self.exit(key, fence, |entry, now| entry.lease_until = now + lease))
    }

    async fn complete(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        let fence = fence.get();
        Ok(self.exit(key, fence, |entry, now| {
            entry.status = EventStatus::Succeeded;
            entry.end_attempt(now, AttemptOutcome::Succeeded, None);
        }))
    }

    async fn retry(
        &self,
        key: &EventKey,
        fence: FenceToken,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        Ok(self.exit(key, fence, |entry, now| {
            entry.status = EventStatus::Pending;
            entry.next_attempt_at = now + delay;
            entry.last_error = Some(error.to_owned());
            entry.end_attempt(now, AttemptOutcome::Failed, Some(error));
        }))
    }

    async fn kill(
        &self,
        key: &EventKey,
        fence: FenceToken,
        error: &str,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        Ok(self.exit(key, fence, |entry, now| {
            entry.status = EventStatus::Dead;
            entry.last_error = Some(error.to_owned());
            entry.end_attempt(now, AttemptOutcome::Dead, Some(error));
        }))
    }

    async fn give_back(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        let fence = fence.get();
        Ok(self.exit(key, fence, |entry, now| {
            entry.status = EventStatus::Pending;
            entry.attempts = entry.attempts.saturating_sub(1);
            entry.next_attempt_at = now;
            entry.end_attempt(now, AttemptOutcome::GivenBack, None);
        }))
    }

    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        let lane = match events.get_mut(key) {
            Some(entry) if entry.status == EventStatus::Dead && entry.body.is_some() => {
                entry.back_to_pending(now);
                entry.lane.clone()
            }
            _ => return Ok(false),
        };
        if let Some(lane) = lane {
            refresh(&mut events, &self.lanes(), &key.namespace, &lane);
        }
        Ok(true)
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.lock().get(key).map(|entry| record(key, entry, true)))
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        let events = self.lock();
        let mut records: Vec<EventRecord> = events
            .iter()
            .filter(|(_, entry)| filter.status.is_none_or(|status| entry.status == status))
            .filter(|(_, entry)| filter.since.is_none_or(|since| entry.received_at >= since))
            .filter(|(key, _)| {
                filter
                    .namespace
                    .as_deref()
                    .is_none_or(|namespace| key.namespace == namespace)
            })
            .filter(|(key, entry)| {
                filter
                    .after
                    .as_ref()
                    .is_none_or(|cursor| cursor.precedes(entry.received_at, key))
            })
            .map(|(key, entry)| record(key, entry, false))
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
        let mut lanes = self.lanes();
        events.retain(|key, entry| {
            // A dead event blocking its lane is kept (with its payload, for
            // a requeue) until an operator requeues or skips it.
            let finished = matches!(entry.status, EventStatus::Succeeded | EventStatus::Dead)
                && !(entry.lane.is_some() && entry.blocks());
            if finished && entry.received_at < events_before {
                purged.events += 1;
                if let Some(lane) = &entry.lane {
                    let lane_key = (key.namespace.clone(), lane.clone());
                    if let Some(members) = lanes.members.get_mut(&lane_key) {
                        members.retain(|_, event_id| *event_id != key.event_id);
                        if members.is_empty() {
                            lanes.members.remove(&lane_key);
                        }
                    }
                }
                return false;
            }
            if finished && entry.received_at < payloads_before && entry.body.take().is_some() {
                purged.payloads += 1;
            }
            true
        });
        drop(lanes);
        // Records that outlived their window, or whose event is gone.
        let now = self.clock.now();
        self.signatures()
            .retain(|(namespace, _), (event_id, expires)| match expires {
                Some(at) => *at > now,
                None => events.contains_key(&EventKey::new(namespace.as_str(), event_id.as_str())),
            });
        Ok(purged)
    }

    async fn purge_batch(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
        limit: usize,
    ) -> Result<PurgeBatch, StoreError> {
        let limit = limit.max(1);
        let mut events = self.lock();
        let finished_before =
            |entry: &Entry, before: SystemTime| entry.finished() && entry.received_at < before;
        let doomed: Vec<EventKey> = events
            .iter()
            .filter(|(_, entry)| finished_before(entry, events_before))
            .map(|(key, _)| key.clone())
            .take(limit)
            .collect();
        for key in &doomed {
            events.remove(key);
        }
        let mut payloads = 0;
        for entry in events.values_mut() {
            if payloads == limit {
                break;
            }
            if finished_before(entry, payloads_before) && entry.body.take().is_some() {
                payloads += 1;
            }
        }
        // Records whose window is over, or whose event is gone.
        let now = self.clock.now();
        let mut signatures = self.signatures();
        let stale: Vec<(String, Bytes)> = signatures
            .iter()
            .filter(|((namespace, _), (event_id, expires))| match expires {
                Some(at) => *at <= now,
                None => !events.contains_key(&EventKey::new(namespace.as_str(), event_id.as_str())),
            })
            .map(|(key, _)| key.clone())
            .take(limit)
            .collect();
        for key in &stale {
            signatures.remove(key);
        }
        let purged = Purged {
            events: doomed.len() as u64,
            payloads: payloads as u64,
        };
        let more = doomed.len() == limit || payloads == limit || stale.len() == limit;
        Ok(PurgeBatch::new(purged, more))
    }

    async fn replay(&self, key: &EventKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        let lane = match events.get_mut(key) {
            Some(entry) => {
                if !replay(entry, now) {
                    return Ok(false);
                }
                entry.lane.clone()
            }
            None => return Ok(false),
        };
        if let Some(lane) = lane {
            refresh(&mut events, &self.lanes(), &key.namespace, &lane);
        }
        Ok(true)
    }

    async fn requeue_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        let now = self.clock.now();
        Ok(self.change_matching(selection, |entry| {
            entry.status == EventStatus::Dead && entry.body.is_some() && {
                entry.back_to_pending(now);
                true
            }
        }))
    }

    async fn replay_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        let now = self.clock.now();
        Ok(self.change_matching(selection, |entry| replay(entry, now)))
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        let events = self.lock();
        let mut counts = StatusCounts::default();
        for entry in events.values() {
            match entry.status {
                EventStatus::Pending => {
                    counts.pending += 1;
                    counts.oldest_pending = Some(
                        counts
                            .oldest_pending
                            .map_or(entry.received_at, |oldest| oldest.min(entry.received_at)),
                    );
                }
                EventStatus::Processing => counts.processing += 1,
                EventStatus::Succeeded => counts.succeeded += 1,
                EventStatus::Dead => counts.dead += 1,
            }
        }
        Ok(counts)
    }

    fn supports_lanes(&self) -> bool {
        true
    }

    async fn skip(&self, key: &EventKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut events = self.lock();
        let lane = match events.get_mut(key) {
            Some(entry)
                if entry.status == EventStatus::Dead && entry.lane.is_some() && !entry.skipped =>
            {
                entry.skipped = true;
                entry.updated_at = now;
                entry.lane.clone()
            }
            _ => return Ok(false),
        };
        if let Some(lane) = lane {
            refresh(&mut events, &self.lanes(), &key.namespace, &lane);
        }
        Ok(true)
    }
}

/// A finished event with its payload back to `pending`, its next attempt a
/// replay.
fn replay(entry: &mut Entry, now: SystemTime) -> bool {
    if !entry.finished() || entry.body.is_none() {
        return false;
    }
    entry.back_to_pending(now);
    entry.replay_next = true;
    true
}

impl MemoryInbox {
    /// Applies `change` (which says whether it changed the entry) to the
    /// entries in `selection`, oldest arrival first, up to its limit.
    fn change_matching(
        &self,
        selection: &Selection,
        mut change: impl FnMut(&mut Entry) -> bool,
    ) -> u64 {
        let limit = selection.limit.min(MAX_BULK);
        let mut events = self.lock();
        let mut chosen: Vec<(&EventKey, &mut Entry)> = events
            .iter_mut()
            .filter(|(key, entry)| {
                selection
                    .namespace
                    .as_deref()
                    .is_none_or(|namespace| key.namespace == namespace)
                    && entry.selected(selection)
            })
            .collect();
        chosen.sort_by_key(|(_, entry)| entry.received_at);
        let mut changed = 0;
        let mut touched: Vec<(String, String)> = Vec::new();
        for (key, entry) in chosen {
            if changed as usize >= limit {
                break;
            }
            if change(entry) {
                changed += 1;
                if let Some(lane) = &entry.lane {
                    touched.push((key.namespace.clone(), lane.clone()));
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let lanes = self.lanes();
        for (namespace, lane) in touched {
            refresh(&mut events, &lanes, &namespace, &lane);
        }
        changed
    }
}

/// The most events one bulk call changes.
const MAX_BULK: usize = 10_000;
