//! Shards: one share of a selection, so that N processes (on N machines, or
//! the N pods of a Kubernetes Indexed Job) import one trail with no overlap
//! and no gap, and without talking to each other.
//!
//! An object belongs to shard `hash(key) mod N`, where the key is the
//! object's name from its `AWSLogs/` folder on (the same in S3 and in a
//! local mirror of it, whatever the bucket or prefix), or the whole name
//! outside the layout, and the hash is SHA-256 (the same on every machine
//! and in every listing order). Pure: no I/O.

use sha2::{Digest, Sha256};

/// Shard `index` of `count` (0-based, as Kubernetes' JOB_COMPLETION_INDEX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (0 <= I < N).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not I/N (e.g. 0/3: the first of three shards)"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("'{i}' in '{text}' is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("'{n}' in '{text}' is not a number"))?;
        Shard::new(index, count)
    }

    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: shards count from 0 to {} (as JOB_COMPLETION_INDEX does)",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the object named `name` is this shard's.
    pub fn takes(&self, name: &str) -> bool {
        shard_of(name, self.count) == self.index
    }
}

/// The shard (of `count`) an object belongs to.
pub fn shard_of(name: &str, count: u32) -> u32 {
    let key = match name.find("AWSLogs/").or_else(|| name.find("AWSLogs\\")) {
        Some(at) => &name[at..],
        None => name,
    };
    let key = key.replace('\\', "/");
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        (0..3000)
            .map(|i| {
                format!(
                    "AWSLogs/{:012}/CloudTrail/us-east-1/2024/03/{:02}/x_{i}.json.gz",
                    i % 7,
                    i % 28 + 1
                )
            })
            .collect()
    }

    #[test]
    fn shards_partition_the_names_with_no_overlap_and_no_gap() {
        let names = names();
        for count in 1..=5 {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            for name in &names {
                let takers = shards.iter().filter(|s| s.takes(name)).count();
                assert_eq!(takers, 1, "{name} is taken by {takers} of {count} shards");
            }
            // Every shard gets a fair share (not all in one).
            for shard in &shards {
                let n = names.iter().filter(|name| shard.takes(name)).count();
                let fair = names.len() / count as usize;
                assert!(
                    n > fair * 8 / 10 && n < fair * 12 / 10,
                    "{shard:?}: {n} of {}",
                    names.len()
                );
            }
        }
    }

    #[test]
    fn the_share_does_not_depend_on_bucket_prefix_folder_or_order() {
        let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/a.json.gz";
        for count in [2, 3, 7] {
            let want = shard_of(key, count);
            assert_eq!(shard_of(&format!("s3://bucket/prefix/{key}"), count), want);
            assert_eq!(shard_of(&format!("/mnt/mirror/{key}"), count), want);
            assert_eq!(shard_of(&format!("C:\\m\\{}", key.replace('/', "\\")), count), want);
        }
        // A fixed value: the same on every machine and build.
        assert_eq!(shard_of(key, 1000), shard_of(key, 1000));
        let sha = Sha256::digest(key.as_bytes());
        let want = u64::from_be_bytes(sha[..8].try_into().unwrap()) % 1000;
        assert_eq!(u64::from(shard_of(key, 1000)), want);
    }

    #[test]
    fn bad_shards_are_refused() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard { index: 1, count: 3 });
        for bad in ["3/3", "1/0", "x/3", "1", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
