//! Typed access to the daemon's sled trees: `schedules`, `fires`, `leaderboard`.

use super::daemon_records::{
    DAEMON_FORMAT_MAJOR, FireRecord, IdempotencyRecord, LeaderRow, ScheduleRecord,
};
use super::db::{HasFormat, Store, StoreError, decode, get, put};

const SCHEDULES: &str = "schedules";
const FIRES: &str = "fires";
const LEADERBOARD: &str = "leaderboard";
const IDEMPOTENCY: &str = "idempotency";

impl HasFormat for IdempotencyRecord {
    const MAX_FORMAT: u32 = DAEMON_FORMAT_MAJOR;
    fn format(&self) -> u32 {
        self.format
    }
}

impl HasFormat for ScheduleRecord {
    const MAX_FORMAT: u32 = DAEMON_FORMAT_MAJOR;
    fn format(&self) -> u32 {
        self.format
    }
}

impl HasFormat for FireRecord {
    const MAX_FORMAT: u32 = DAEMON_FORMAT_MAJOR;
    fn format(&self) -> u32 {
        self.format
    }
}

impl HasFormat for LeaderRow {
    const MAX_FORMAT: u32 = DAEMON_FORMAT_MAJOR;
    fn format(&self) -> u32 {
        self.format
    }
}

impl Store {
    /// The submission recorded under an `Idempotency-Key`.
    pub fn idempotent(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        get(&self.tree(IDEMPOTENCY)?, key.as_bytes())
    }

    /// Records a key's submission (made durable by the run's own flush, which follows).
    pub fn put_idempotent(&self, key: &str, r: &IdempotencyRecord) -> Result<(), StoreError> {
        put(&self.tree(IDEMPOTENCY)?, key.as_bytes(), r)
    }

    pub fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), StoreError> {
        put(&self.tree(SCHEDULES)?, s.name.as_bytes(), s)
    }

    pub fn schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        get(&self.tree(SCHEDULES)?, name.as_bytes())
    }

    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.tree(SCHEDULES)?
            .iter()
            .values()
            .map(|v| decode("schedule", &v?))
            .collect()
    }

    /// Removes a schedule; its fires stay (they name runs). False if there was none.
    pub fn remove_schedule(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.tree(SCHEDULES)?.remove(name.as_bytes())?.is_some())
    }

    /// Records a fire only if none with its id exists: true if this call claimed it.
    pub fn claim_fire(&self, fire: &FireRecord) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(fire).expect("records serialize");
        let swapped =
            self.tree(FIRES)?
                .compare_and_swap(fire.id.as_bytes(), None::<&[u8]>, Some(bytes))?;
        Ok(swapped.is_ok())
    }

    pub fn put_fire(&self, fire: &FireRecord) -> Result<(), StoreError> {
        put(&self.tree(FIRES)?, fire.id.as_bytes(), fire)
    }

    pub fn fire(&self, id: &str) -> Result<Option<FireRecord>, StoreError> {
        get(&self.tree(FIRES)?, id.as_bytes())
    }

    /// A schedule's fires, oldest first (ids sort by time within a schedule).
    pub fn fires(&self, schedule: &str) -> Result<Vec<FireRecord>, StoreError> {
        let prefix = format!("{schedule}@");
        self.tree(FIRES)?
            .scan_prefix(prefix.as_bytes())
            .values()
            .map(|v| decode("fire", &v?))
            .collect()
    }

    /// Every fire of every schedule.
    pub fn all_fires(&self) -> Result<Vec<FireRecord>, StoreError> {
        self.tree(FIRES)?
            .iter()
            .values()
            .map(|v| decode("fire", &v?))
            .collect()
    }

    /// Adds or replaces the row for (suite, model, metric, night).
    pub fn put_leader_row(&self, row: &LeaderRow) -> Result<(), StoreError> {
        let key = format!(
            "{}\0{}\0{}\0{}",
            row.suite, row.model, row.metric, row.night
        );
        put(&self.tree(LEADERBOARD)?, key.as_bytes(), row)
    }

    /// Every leaderboard row, by suite, model, metric, night.
    pub fn leader_rows(&self) -> Result<Vec<LeaderRow>, StoreError> {
        self.tree(LEADERBOARD)?
            .iter()
            .values()
            .map(|v| decode("leaderboard", &v?))
            .collect()
    }
}
