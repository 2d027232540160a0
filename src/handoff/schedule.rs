//! When peer supporters are on call: weekly windows in a time zone, written like the
//! services directory's opening hours (`mon-fri 08:00-20:00`, `sat,sun 22:00-06:00`).

use crate::routing::{Hours, Window};
use jiff::tz::TimeZone;

#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    windows: Vec<Window>,
}

impl Schedule {
    /// `windows` as in the services directory; an error names the bad entry.
    pub fn parse(time_zone: &str, windows: &[String]) -> Result<Schedule, String> {
        let tz = TimeZone::get(time_zone).map_err(|_| format!("unknown time zone `{time_zone}`"))?;
        let windows = windows
            .iter()
            .map(|w| crate::flow::decode::parse_window(w).map_err(|e| format!("cannot read hours `{w}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if windows.is_empty() {
            return Err("no opening hours given (leave `hours` out for always)".into());
        }
        Ok(Schedule { tz, windows })
    }

    pub fn is_open(&self, now: jiff::Timestamp) -> bool {
        let hours = Hours::Weekly {
            tz: self.tz.clone(),
            tz_name: String::new(),
            windows: self.windows.clone(),
            say: Default::default(),
        };
        hours.is_open(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_in_the_supporters_time_zone() {
        let s = Schedule::parse("America/Chicago", &["mon-fri 08:00-20:00".into()]).unwrap();
        // Monday 2026-11-23 14:00 UTC is 08:00 in Chicago; 13:59 UTC is 07:59.
        assert!(s.is_open("2026-11-23T14:00:00Z".parse().unwrap()));
        assert!(!s.is_open("2026-11-23T13:59:00Z".parse().unwrap()));
        // Saturday.
        assert!(!s.is_open("2026-11-28T18:00:00Z".parse().unwrap()));
        assert!(Schedule::parse("Mars/Base", &["mon 08:00-09:00".into()]).unwrap_err().contains("time zone"));
        assert!(Schedule::parse("UTC", &["moon 08:00-09:00".into()]).unwrap_err().contains("moon"));
        assert!(Schedule::parse("UTC", &[]).is_err());
    }
}
