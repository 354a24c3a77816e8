//! Reusable byte buffers for the pipeline's big, short-lived allocations
//! (pieces of files, batches; decoding windows are kept per thread, see
//! `decode::stream`).
//!
//! A buffer of megabytes freed after every file or batch goes back to the
//! operating system and comes back as fresh pages that the kernel zeroes
//! first: profiles showed a fifth of the decoding time spent there. Kept
//! here instead, the pages stay mapped.
//!
//! Invariant: at most [`KEEP`] buffers of at most [`MAX_BYTES`] each are
//! kept, so what this holds is bounded.

use std::sync::Mutex;

/// How many free buffers are kept.
const KEEP: usize = 32;

/// Larger buffers (grown for a huge event) are let go.
const MAX_BYTES: usize = 16 << 20;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `capacity` bytes: the smallest
/// free one with that room, else the largest (grown), else a new one.
pub fn take(capacity: usize) -> Vec<u8> {
    let reused = {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        pick(&free, capacity).map(|at| free.swap_remove(at))
    };
    match reused {
        Some(mut buffer) => {
            buffer.clear();
            buffer.reserve(capacity);
            buffer
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Which free buffer [`take`] reuses: small buffers (pieces) are not grown into batches while a batch-sized one waits.
fn pick(free: &[Vec<u8>], capacity: usize) -> Option<usize> {
    let room = |at: &usize| free[*at].capacity();
    let fitting = (0..free.len())
        .filter(|&at| free[at].capacity() >= capacity)
        .min_by_key(room);
    fitting.or_else(|| (0..free.len()).max_by_key(room))
}

/// Gives a buffer back for reuse.
pub fn give(buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > MAX_BYTES {
        return;
    }
    let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
    if free.len() < KEEP {
        free.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_buffer_with_room_is_reused() {
        let free: Vec<Vec<u8>> = [100, 5000, 1000, 3000].iter().map(|&n| Vec::with_capacity(n)).collect();
        let room = |at: Option<usize>| at.map(|at| free[at].capacity());
        assert!(room(pick(&free, 900)).is_some_and(|c| (1000..3000).contains(&c)));
        assert!(room(pick(&free, 2000)).is_some_and(|c| (3000..5000).contains(&c)));
        assert!(room(pick(&free, 10)).is_some_and(|c| c < 1000));
        // None big enough: the largest, to grow the least.
        assert!(room(pick(&free, 9000)).is_some_and(|c| c >= 5000));
        assert_eq!(pick(&[], 10), None);
    }

    #[test]
    fn buffers_come_back_empty_with_their_room() {
        let mut b = take(1000);
        b.extend_from_slice(b"abc");
        let room = b.capacity();
        give(b);
        let again = take(10);
        assert!(again.is_empty());
        assert!(again.capacity() >= 10);
        // Possibly another test's buffer, but never a dirty one.
        let _ = room;
        give(vec![0; 0]);
        give(Vec::with_capacity(MAX_BYTES + 1));
    }
}
