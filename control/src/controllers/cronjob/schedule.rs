//! Cron schedules as Kubernetes reads them (robfig/cron's standard parser): five fields
//! (minute, hour, day of month, month, day of week) with lists, ranges, steps and the names
//! JAN–DEC and SUN–SAT, the descriptors `@yearly` … `@hourly` and `@every DURATION`, and an
//! optional `TZ=`/`CRON_TZ=` prefix.
//!
//! Times are matched on the wall clock of a time zone: a local time that a daylight-saving
//! change skips never happens (its run is skipped), and one it repeats happens twice.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    /// The zone of a `TZ=`/`CRON_TZ=` prefix.
    zone: Option<TimeZone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields(Fields),
    /// `@every DURATION`: a constant delay (whole seconds, at least one).
    Every(SignedDuration),
}

/// One bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Whether the day-of-month / day-of-week field was `*` or `?` (without a step above 1):
    /// then both must match; otherwise either may.
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses `spec`, with robfig/cron's error messages.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let mut spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some(space) = spec.find(' ') else { return Err(format!("provided bad location {spec}")) };
        let name = &spec[spec.find('=').map_or(0, |i| i + 1)..space];
        zone = Some(TimeZone::get(name).map_err(|_| format!("provided bad location {name}"))?);
        spec = spec[space..].trim();
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        let every = |fields: [&str; 5]| parse_fields(&fields);
        let kind = match descriptor {
            "yearly" | "annually" => every(["0", "0", "1", "1", "*"])?,
            "monthly" => every(["0", "0", "1", "*", "*"])?,
            "weekly" => every(["0", "0", "*", "*", "0"])?,
            "daily" | "midnight" => every(["0", "0", "*", "*", "*"])?,
            "hourly" => every(["0", "*", "*", "*", "*"])?,
            _ if descriptor.starts_with("every ") => {
                let text = &descriptor["every ".len()..];
                let seconds = crate::registry::validation::parse_duration(text)
                    .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                // Less than a second rounds up to one; the rest to whole seconds.
                let seconds = if seconds < 1.0 { 1 } else { seconds.round() as i64 };
                Kind::Every(SignedDuration::from_secs(seconds))
            }
            _ => return Err(format!("unrecognized descriptor: {spec}")),
        };
        return Ok(Schedule { kind, zone });
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let fields: [&str; 5] = fields
        .as_slice()
        .try_into()
        .map_err(|_| format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")))?;
    Ok(Schedule { kind: parse_fields(&fields)?, zone })
}

fn parse_fields(fields: &[&str; 5]) -> Result<Kind, String> {
    let (minute, _) = field(fields[0], 0, 59, &[], 0)?;
    let (hour, _) = field(fields[1], 0, 23, &[], 0)?;
    let (dom, dom_star) = field(fields[2], 1, 31, &[], 0)?;
    let (month, _) = field(fields[3], 1, 12, MONTHS, 1)?;
    let (dow, dow_star) = field(fields[4], 0, 6, DAYS, 0)?;
    Ok(Kind::Fields(Fields { minute, hour, dom, month, dow, dom_star, dow_star }))
}

/// The bits of a comma-separated field, and whether it was a star.
fn field(text: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for expr in text.split(',') {
        let (b, s) = range(expr, min, max, names, base)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

fn range(expr: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let int = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + base);
        }
        let n: i64 = s
            .parse()
            .map_err(|_| format!("failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax"))?;
        if n < 0 {
            return Err(format!("negative number ({n}) not allowed: {s}"));
        }
        Ok(n.min(i64::from(u32::MAX)) as u32)
    };
    let mut star = false;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        star = true;
        (min, max)
    } else {
        let start = int(low_high[0])?;
        match low_high.len() {
            1 => (start, start),
            2 => (start, int(low_high[1])?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if low_high.len() == 1 {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let bits = (start..=end).step_by(step as usize).fold(0u64, |b, v| b | (1 << v));
    Ok((bits, star))
}

fn has(bits: u64, value: i8) -> bool {
    (0..64).contains(&value) && bits & (1 << value) != 0
}

impl Fields {
    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.dom, date.day());
        let dow = has(self.dow, date.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star { dom && dow } else { dom || dow }
    }

    /// The first minute strictly after `after` whose wall time in its zone matches; None when
    /// none does within five years (such as `0 0 30 2 *`).
    fn next(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone().clone();
        let start = after.timestamp();
        // The next whole minute after `after`.
        let floor = Timestamp::from_second(start.as_second().div_euclid(60) * 60).ok()?;
        let mut t = floor.checked_add(SignedDuration::from_mins(1)).ok()?.to_zoned(tz.clone());
        let limit = start.checked_add(SignedDuration::from_hours(5 * 366 * 24)).ok()?;
        // Midnight (or the first wall time after it) of a date; always later than `t`.
        let day_start = |date: Date, t: &Zoned| -> Option<Zoned> {
            let next = tz.to_ambiguous_zoned(date.at(0, 0, 0, 0)).compatible().ok()?;
            Some(if next.timestamp() > t.timestamp() { next } else { t.checked_add(1.minute()).ok()? })
        };
        while t.timestamp() <= limit {
            let dt: DateTime = t.datetime();
            if !has(self.month, dt.month()) {
                t = day_start(dt.date().last_of_month().tomorrow().ok()?, &t)?;
            } else if !self.day_matches(dt.date()) {
                t = day_start(dt.date().tomorrow().ok()?, &t)?;
            } else if !has(self.hour, dt.hour()) {
                t = t.checked_add(i64::from(60 - dt.minute()).minutes()).ok()?;
            } else if !has(self.minute, dt.minute()) {
                t = t.checked_add(1.minute()).ok()?;
            } else {
                return Some(t);
            }
        }
        None
    }
}

impl Schedule {
    /// The zone of a `TZ=`/`CRON_TZ=` prefix, if the schedule has one.
    pub fn zone(&self) -> Option<&TimeZone> {
        self.zone.as_ref()
    }

    /// The first scheduled time strictly after `after`, on the wall clock of the schedule's
    /// own zone if it has one, else of `tz`.
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let tz = self.zone.as_ref().unwrap_or(tz);
        match &self.kind {
            Kind::Fields(fields) => fields.next(&after.to_zoned(tz.clone())).map(|z| z.timestamp()),
            Kind::Every(delay) => {
                let whole = Timestamp::from_second(after.as_second()).ok()?;
                whole.checked_add(*delay).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next_in(spec: &str, after: &str, tz: &str) -> String {
        let tz = TimeZone::get(tz).unwrap();
        let next = parse(spec).unwrap().next(at(after), &tz).expect("a next time");
        next.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    fn next(spec: &str, after: &str) -> String {
        next_in(spec, after, "UTC")
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        assert_eq!(next("*/1 * * * *", "2026-03-04T10:20:30Z"), "2026-03-04T10:21:00+00:00");
        assert_eq!(next("* * * * *", "2026-03-04T10:20:00Z"), "2026-03-04T10:21:00+00:00");
        assert_eq!(next("*/15 * * * *", "2026-03-04T10:20:00Z"), "2026-03-04T10:30:00+00:00");
        assert_eq!(next("5,10 9-17 * * *", "2026-03-04T17:10:00Z"), "2026-03-05T09:05:00+00:00");
        assert_eq!(next("0 12 * * MON-FRI", "2026-03-06T12:00:00Z"), "2026-03-09T12:00:00+00:00");
        assert_eq!(next("0 0 1 jan,JUL *", "2026-03-04T00:00:00Z"), "2026-07-01T00:00:00+00:00");
        assert_eq!(next("30 6-16/4 * * *", "2026-03-04T10:31:00Z"), "2026-03-04T14:30:00+00:00");
        assert_eq!(next("7/20 * * * *", "2026-03-04T10:28:00Z"), "2026-03-04T10:47:00+00:00");
        // Leap day: only in leap years.
        assert_eq!(next("0 0 29 2 *", "2026-03-04T00:00:00Z"), "2028-02-29T00:00:00+00:00");
        assert!(parse("0 0 30 2 *").unwrap().next(at("2026-01-01T00:00:00Z"), &TimeZone::UTC).is_none());
    }

    #[test]
    fn day_of_month_and_week_combine_as_cron_does() {
        // Both restricted: either matches (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * 5", "2026-03-01T00:00:00Z"), "2026-03-06T00:00:00+00:00");
        assert_eq!(next("0 0 13 * 5", "2026-03-06T00:00:00Z"), "2026-03-13T00:00:00+00:00");
        // A star day of month: the weekday must match.
        assert_eq!(next("0 0 * * 0", "2026-03-04T00:00:00Z"), "2026-03-08T00:00:00+00:00");
        // A stepped star is a restriction: either matches.
        assert_eq!(next("0 0 */10 * 1", "2026-03-02T00:00:00Z"), "2026-03-09T00:00:00+00:00");
    }

    #[test]
    fn descriptors() {
        assert_eq!(next("@yearly", "2026-03-04T10:00:00Z"), "2027-01-01T00:00:00+00:00");
        assert_eq!(next("@annually", "2026-03-04T10:00:00Z"), "2027-01-01T00:00:00+00:00");
        assert_eq!(next("@monthly", "2026-03-04T10:00:00Z"), "2026-04-01T00:00:00+00:00");
        assert_eq!(next("@weekly", "2026-03-04T10:00:00Z"), "2026-03-08T00:00:00+00:00");
        assert_eq!(next("@daily", "2026-03-04T10:00:00Z"), "2026-03-05T00:00:00+00:00");
        assert_eq!(next("@midnight", "2026-03-04T10:00:00Z"), "2026-03-05T00:00:00+00:00");
        assert_eq!(next("@hourly", "2026-03-04T10:00:00Z"), "2026-03-04T11:00:00+00:00");
        assert_eq!(next("@every 90s", "2026-03-04T10:00:00.5Z"), "2026-03-04T10:01:30+00:00");
    }

    #[test]
    fn errors_read_as_kubernetes_reports_them() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err(""), "empty spec string");
        assert_eq!(err("* * * *"), "expected exactly 5 fields, found 4: [* * * *]");
        assert_eq!(err("60 * * * *"), "end of range (60) above maximum (59): 60");
        assert_eq!(err("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
        assert_eq!(err("5-1 * * * *"), "beginning of range (5) beyond end of range (1): 5-1");
        assert_eq!(err("*/0 * * * *"), "step of range should be a positive number: */0");
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(err("x * * * *"), "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
        assert_eq!(err("* * * * SUN-MOO").split(':').next(), Some("failed to parse int from MOO"));
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(next_in("0 9 * * *", "2026-03-28T12:00:00Z", "Europe/Berlin"), "2026-03-29T09:00:00+02:00");
        // 02:30 does not exist in Berlin on 2026-03-29 (02:00 → 03:00): that run is skipped.
        assert_eq!(next_in("30 2 * * *", "2026-03-28T12:00:00Z", "Europe/Berlin"), "2026-03-30T02:30:00+02:00");
        // Hourly runs go on through the gap: 01:00 (+01) is followed by 03:00 (+02).
        assert_eq!(next_in("0 * * * *", "2026-03-29T00:30:00Z", "Europe/Berlin"), "2026-03-29T03:00:00+02:00");
        // 02:30 happens twice on 2026-10-25 (03:00 → 02:00): both run.
        let first = next_in("30 2 * * *", "2026-10-24T12:00:00Z", "Europe/Berlin");
        assert_eq!(first, "2026-10-25T02:30:00+02:00");
        assert_eq!(next_in("30 2 * * *", "2026-10-25T00:30:00Z", "Europe/Berlin"), "2026-10-25T02:30:00+01:00");
        // A TZ= prefix sets the zone itself.
        assert_eq!(next("TZ=America/New_York 0 9 * * *", "2026-07-01T00:00:00Z"), "2026-07-01T13:00:00+00:00");
        assert_eq!(parse("TZ=Mars/Olympus 0 9 * * *").unwrap_err(), "provided bad location Mars/Olympus");
    }
}
