//! Reusable byte buffers for the pipeline's big, short-lived allocations
//! (decoding windows, pieces of files, batches).
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

/// An empty buffer with room for at least `capacity` bytes.
pub fn take(capacity: usize) -> Vec<u8> {
    let reused = FREE.lock().unwrap_or_else(|p| p.into_inner()).pop();
    match reused {
        Some(mut buffer) => {
            buffer.reserve(capacity);
            buffer
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Gives a buffer back for reuse.
pub fn give(mut buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > MAX_BYTES {
        return;
    }
    buffer.clear();
    let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
    if free.len() < KEEP {
        free.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
