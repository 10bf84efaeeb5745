//! Example custom policy: `computers.remote_control` only Monday to Friday, 08:00 to 18:00
//! UTC, judged from `context.time_ms`. It narrows what tenant-roles allows: outside those
//! hours it denies, inside them (and for every other action) it abstains, so a technician
//! still needs the `computers.remote_control` permission for the request to pass.

#![no_std]

extern crate alloc;

use latchkey_policy_sdk::{Decision, Policy, Request, export_policy};

/// The action this policy narrows.
pub const ACTION: &str = "computers.remote_control";

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
/// Business hours, UTC: from 08:00 inclusive to 18:00 exclusive.
const OPENS_HOUR: i64 = 8;
const CLOSES_HOUR: i64 = 18;

/// The business-hours policy.
#[derive(Debug)]
pub struct BusinessHours;

impl Policy for BusinessHours {
    fn decide(request: &Request) -> Decision {
        if request.action != ACTION {
            return Decision::not_applicable("business-hours only judges computers.remote_control");
        }
        if in_business_hours(request.context.time_ms) {
            // Abstain rather than allow: this policy only narrows, the roles still decide.
            Decision::not_applicable("within business hours (Monday to Friday, 08:00-18:00 UTC)")
        } else {
            Decision::deny("remote control is allowed only Monday to Friday, 08:00-18:00 UTC")
        }
    }
}

export_policy!(BusinessHours);

/// Whether `time_ms` (milliseconds since the Unix epoch, UTC) falls Monday to Friday,
/// 08:00 (inclusive) to 18:00 (exclusive).
pub fn in_business_hours(time_ms: i64) -> bool {
    // Euclidean division so instants before 1970 land on the right day and hour.
    let days = time_ms.div_euclid(MS_PER_DAY);
    let hour = time_ms.rem_euclid(MS_PER_DAY) / MS_PER_HOUR;
    // 1970-01-01 was a Thursday; with Monday = 0 that is weekday 3.
    let weekday = (days + 3).rem_euclid(7);
    weekday < 5 && (OPENS_HOUR..CLOSES_HOUR).contains(&hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 is a Monday.
    const MONDAY_MIDNIGHT: i64 = 1_795_392_000_000;

    fn at(day: i64, hour: i64, minute: i64) -> i64 {
        MONDAY_MIDNIGHT + day * MS_PER_DAY + hour * MS_PER_HOUR + minute * 60_000
    }

    #[test]
    fn hours_table() {
        let cases = [
            (at(0, 8, 0), true),                        // Monday, opening minute
            (at(0, 7, 59), false),                      // Monday, a minute early
            (at(0, 17, 59), true),                      // Monday, last minute
            (at(0, 18, 0), false),                      // Monday, closing time
            (at(4, 12, 0), true),                       // Friday noon
            (at(5, 12, 0), false),                      // Saturday noon
            (at(6, 12, 0), false),                      // Sunday noon
            (at(7, 9, 0), true),                        // next Monday
            (0, false),                                 // 1970-01-01 00:00, a Thursday night
            (8 * MS_PER_HOUR, true),                    // 1970-01-01 08:00, Thursday
            (-MS_PER_DAY + 9 * MS_PER_HOUR, true),      // 1969-12-31 09:00, Wednesday
            (-3 * MS_PER_DAY + 9 * MS_PER_HOUR, true),  // 1969-12-29 09:00, Monday
            (-4 * MS_PER_DAY + 9 * MS_PER_HOUR, false), // 1969-12-28 09:00, Sunday
        ];
        for (time_ms, want) in cases {
            assert_eq!(in_business_hours(time_ms), want, "time_ms {time_ms}");
        }
    }
}
