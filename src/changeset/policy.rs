//! What a plan may ask of the PhotoTranscoder cache: empty it, trim it oldest-first to a
//! budget, or drop entries older than an age. The SPEC and the changeset name it; `scan::cache`
//! carries it out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What to do with the PhotoTranscoder cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Empty it (keep the folder).
    All,
    /// Delete oldest-first until it fits in this many bytes.
    MaxSize(u64),
    /// Delete entries whose mtime is older than this.
    OlderThan(Duration),
}

impl FromStr for CachePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(CachePolicy::All);
        }
        if let Some(size) = s.strip_prefix("max-size=") {
            return parse_size(size).map(CachePolicy::MaxSize);
        }
        if let Some(age) = s.strip_prefix("older-than=") {
            return parse_age(age).map(CachePolicy::OlderThan);
        }
        Err(format!("`{s}` is not a cache policy; use all, max-size=SIZE (e.g. 20GiB) or older-than=AGE (e.g. 30d)"))
    }
}

impl fmt::Display for CachePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CachePolicy::All => f.write_str("all"),
            CachePolicy::MaxSize(bytes) => write!(f, "max-size={bytes}"),
            CachePolicy::OlderThan(age) => write!(f, "older-than={}h", age.as_secs() / 3600),
        }
    }
}

/// `20GiB`, `20 GB`, `512MiB`, `1.5TB`, `1048576` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| format!("`{s}` is not a size (e.g. 20GiB, 500MB, 1048576)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024.0f64.powi(4),
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit; use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bytes as u64)
}

/// `30d`, `12h`, `1.5d`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.len().saturating_sub(1));
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not an age (e.g. 30d or 12h)"))?;
    let hours = match unit {
        "d" => value * 24.0,
        "h" => value,
        _ => return Err(format!("`{s}` is not an age; give days (30d) or hours (12h)")),
    };
    if !hours.is_finite() || hours <= 0.0 {
        return Err(format!("`{s}` must be a positive age"));
    }
    Ok(Duration::from_secs_f64(hours * 3600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_parse() {
        assert_eq!(parse_size("20GiB").unwrap(), 20 << 30);
        assert_eq!(parse_size("20 GB").unwrap(), 20_000_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("20XB").is_err());
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert!(parse_age("30").is_err());
        assert!(parse_age("-3d").is_err());
        assert!("max-size=".parse::<CachePolicy>().is_err());
        assert!("everything".parse::<CachePolicy>().is_err());
        assert_eq!("older-than=2d".parse::<CachePolicy>().unwrap().to_string(), "older-than=48h");
    }
}
