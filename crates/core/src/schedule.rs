//! Time in a notification: when it may be sent, escalation levels, digests, and a recipient's
//! quiet hours, with the arithmetic that turns them into instants.

use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The longest delay a channel or `send_at` may ask for.
pub const MAX_DELAY_MINUTES: f64 = 60.0 * 24.0 * 366.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub levels: Vec<EscalationLevel>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    pub level: u32,
    #[serde(default)]
    pub delay_minutes: f64,
    pub target_roles: Vec<String>,
    /// What must still hold for the level to fire; levels after the first default to
    /// `no_acknowledgment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Fires only while nobody has acknowledged the notification.
    NoAcknowledgment,
    /// Fires only while the notification is not resolved.
    NoResolution,
}

impl Condition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Condition::NoAcknowledgment => "no_acknowledgment",
            Condition::NoResolution => "no_resolution",
        }
    }

    /// Whether the level may still fire given what has happened.
    pub fn holds(&self, acknowledged: bool, resolved: bool) -> bool {
        match self {
            Condition::NoAcknowledgment => !acknowledged && !resolved,
            Condition::NoResolution => !resolved,
        }
    }
}

impl EscalationLevel {
    pub fn condition(&self) -> Option<Condition> {
        match (self.condition, self.level) {
            (Some(c), _) => Some(c),
            (None, 1) => None,
            (None, _) => Some(Condition::NoAcknowledgment),
        }
    }

    pub fn targets(&self, role: Option<&str>) -> bool {
        role.is_some_and(|r| self.target_roles.iter().any(|t| t == r))
    }
}

/// Deliveries for the same recipient, channel and key within the window are sent as one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub key: String,
    pub window_seconds: u32,
}

/// A daily window, in the recipient's time zone, in which only critical notifications go out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, 24-hour.
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTime(pub String);

impl fmt::Display for BadTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a time of day such as 22:00", self.0)
    }
}

pub fn parse_time_of_day(raw: &str) -> Result<NaiveTime, BadTime> {
    NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| BadTime(raw.to_owned()))
}

impl QuietHours {
    pub fn window(&self) -> Result<(NaiveTime, NaiveTime), BadTime> {
        Ok((
            parse_time_of_day(&self.start)?,
            parse_time_of_day(&self.end)?,
        ))
    }

    /// When a delivery due at `at` may go out: `at` itself outside quiet hours, else the end of
    /// the quiet window it falls in, in the zone's own clock, daylight-saving changes
    /// included.
    pub fn release(&self, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let Ok((start, end)) = self.window() else {
            return at;
        };
        if start == end {
            return at;
        }
        let local = at.with_timezone(&zone).naive_local();
        let (date, time) = (local.date(), local.time());
        let end_date = if start < end {
            // Same-day window, such as 13:00–14:00.
            if time >= start && time < end {
                Some(date)
            } else {
                None
            }
        } else if time >= start {
            // Overnight window, such as 22:00–07:00, evening side.
            date.succ_opt()
        } else if time < end {
            Some(date)
        } else {
            None
        };
        match end_date {
            Some(d) => local_instant(zone, d, end).max(at),
            None => at,
        }
    }
}

/// The instant a wall-clock time names in a zone. A time skipped by a daylight-saving jump
/// becomes the first instant after the jump; a repeated time, its first occurrence.
pub fn local_instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut naive = NaiveDateTime::new(date, time);
    for _ in 0..4 {
        match zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => naive += Duration::minutes(30),
        }
    }
    Utc.from_utc_datetime(&naive)
}

/// A delay in minutes (fractions allowed) as a duration.
pub fn minutes(delay: f64) -> Duration {
    Duration::milliseconds((delay * 60_000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn night() -> QuietHours {
        QuietHours {
            start: "22:00".into(),
            end: "07:00".into(),
        }
    }

    #[test]
    fn outside_quiet_hours_a_delivery_goes_at_once() {
        let at = utc("2026-06-10T10:00:00Z"); // 12:00 in Berlin
        assert_eq!(night().release(at, chrono_tz::Europe::Berlin), at);
    }

    #[test]
    fn inside_an_overnight_window_it_waits_for_the_morning_in_the_recipients_zone() {
        // 23:30 in Berlin (summer, UTC+2) → 07:00 next day = 05:00 UTC.
        let at = utc("2026-06-10T21:30:00Z");
        assert_eq!(
            night().release(at, chrono_tz::Europe::Berlin),
            utc("2026-06-11T05:00:00Z")
        );
        // 03:00 in Berlin → 07:00 the same day.
        let at = utc("2026-06-11T01:00:00Z");
        assert_eq!(
            night().release(at, chrono_tz::Europe::Berlin),
            utc("2026-06-11T05:00:00Z")
        );
    }

    #[test]
    fn a_night_across_the_spring_change_ends_at_seven_summer_time() {
        // 23:00 CET on Saturday 28 March 2026; clocks jump 02:00 → 03:00 that night.
        let at = utc("2026-03-28T22:00:00Z");
        // 07:00 CEST (UTC+2) on the 29th is 05:00 UTC, not 06:00.
        assert_eq!(
            night().release(at, chrono_tz::Europe::Berlin),
            utc("2026-03-29T05:00:00Z")
        );
    }

    #[test]
    fn a_night_across_the_autumn_change_ends_at_seven_winter_time() {
        // 23:00 CEST on Saturday 24 October 2026; clocks fall back 03:00 → 02:00 that night.
        let at = utc("2026-10-24T21:00:00Z");
        // 07:00 CET (UTC+1) on the 25th is 06:00 UTC.
        assert_eq!(
            night().release(at, chrono_tz::Europe::Berlin),
            utc("2026-10-25T06:00:00Z")
        );
    }

    #[test]
    fn a_window_ending_in_the_skipped_hour_ends_right_after_the_jump() {
        let q = QuietHours {
            start: "01:00".into(),
            end: "02:30".into(),
        };
        let at = utc("2026-03-29T00:30:00Z"); // 01:30 CET
        // 02:30 does not exist on that day in Berlin; 03:00 CEST = 01:00 UTC.
        assert_eq!(
            q.release(at, chrono_tz::Europe::Berlin),
            utc("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn a_same_day_window_holds_only_inside_it() {
        let q = QuietHours {
            start: "13:00".into(),
            end: "14:00".into(),
        };
        let tz = chrono_tz::Asia::Tokyo;
        assert_eq!(
            q.release(utc("2026-06-10T04:30:00Z"), tz),
            utc("2026-06-10T05:00:00Z")
        );
        assert_eq!(
            q.release(utc("2026-06-10T05:30:00Z"), tz),
            utc("2026-06-10T05:30:00Z")
        );
    }

    #[test]
    fn later_levels_default_to_no_acknowledgment() {
        let level = |n| EscalationLevel {
            level: n,
            delay_minutes: 0.0,
            target_roles: vec![],
            condition: None,
        };
        assert_eq!(level(1).condition(), None);
        assert_eq!(level(2).condition(), Some(Condition::NoAcknowledgment));
        assert!(Condition::NoResolution.holds(true, false));
        assert!(!Condition::NoAcknowledgment.holds(true, false));
    }
}
