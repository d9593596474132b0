//! A queue of page-table updates sent to the hypervisor in one `pt_update` batch.
//!
//! Requests are queued and go out together when the queue is full, when the caller needs
//! them applied (a table is about to be pinned or switched to), or on [`UpdateQueue::flush`].
//! A batch the hypervisor stops (it applies requests in order up to the first bad one) comes
//! back as [`MmError::Update`] naming the failing request, its index and how many were
//! applied; requests queued after it are dropped, not sent.
#![forbid(unsafe_code)]

use hypercall_abi::mmu::MmuUpdate;

use super::{MmError, Mmu};

/// Default capacity: 512 requests (8 KiB), the batch size that amortises a hypercall.
pub const DEFAULT_BATCH: usize = 512;

/// Up to `N` queued requests.
pub struct UpdateQueue<const N: usize = DEFAULT_BATCH> {
    reqs: [MmuUpdate; N],
    len: usize,
    /// Batches sent.
    batches: u64,
    /// Requests applied.
    applied: u64,
}

impl<const N: usize> Default for UpdateQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> UpdateQueue<N> {
    /// An empty queue.
    pub const fn new() -> Self {
        const { assert!(N > 0, "a queue holds at least one request") };
        UpdateQueue {
            reqs: [MmuUpdate { ptr: 0, val: 0 }; N],
            len: 0,
            batches: 0,
            applied: 0,
        }
    }

    /// Queues `req`, first sending the queue if it is full.
    pub fn push(&mut self, mmu: &mut impl Mmu, req: MmuUpdate) -> Result<(), MmError> {
        if self.len == N {
            self.flush(mmu)?;
        }
        self.reqs[self.len] = req;
        self.len += 1;
        Ok(())
    }

    /// Queues a normal update of the entry at machine address `ptr` to `val`.
    pub fn update(&mut self, mmu: &mut impl Mmu, ptr: u64, val: u64) -> Result<(), MmError> {
        self.push(mmu, MmuUpdate { ptr, val })
    }

    /// Sends every queued request in one `pt_update` call. On failure the queue is empty
    /// again and the error names the failing request.
    pub fn flush(&mut self, mmu: &mut impl Mmu) -> Result<(), MmError> {
        if self.len == 0 {
            return Ok(());
        }
        let batch = &self.reqs[..self.len];
        let len = self.len;
        self.len = 0;
        self.batches += 1;
        match mmu.pt_update(batch) {
            Ok(()) => {
                self.applied += len as u64;
                Ok(())
            }
            Err(failure) => {
                let index = failure.done.min(len - 1);
                self.applied += index as u64;
                Err(MmError::Update {
                    request: batch[index],
                    index,
                    applied: index,
                    errno: failure.errno,
                })
            }
        }
    }

    /// Requests waiting to be sent.
    pub fn pending(&self) -> &[MmuUpdate] {
        &self.reqs[..self.len]
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops what is waiting, unsent; returns how many requests that was.
    pub fn discard(&mut self) -> usize {
        core::mem::take(&mut self.len)
    }

    /// Whether the next push sends the queue first.
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// `(batches sent, requests applied)` so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.batches, self.applied)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use crate::mm::BatchFailure;
    use hypercall_abi::errno::Errno;
    use hypercall_abi::mmu::MmuextOp;
    use std::vec::Vec;

    /// Records every batch; refuses requests whose `val` is `bad`.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub batches: Vec<Vec<MmuUpdate>>,
        pub applied: Vec<MmuUpdate>,
        pub bad: Option<u64>,
    }

    impl Mmu for Recorder {
        fn pt_update(&mut self, reqs: &[MmuUpdate]) -> Result<(), BatchFailure> {
            self.batches.push(reqs.to_vec());
            for (done, req) in reqs.iter().enumerate() {
                if Some(req.val) == self.bad {
                    return Err(BatchFailure {
                        done,
                        errno: Errno::EINVAL,
                    });
                }
                self.applied.push(*req);
            }
            Ok(())
        }
        fn mmuext(&mut self, _ops: &[MmuextOp]) -> Result<(), BatchFailure> {
            Ok(())
        }
    }

    fn req(i: u64) -> MmuUpdate {
        MmuUpdate { ptr: i * 8, val: i }
    }

    #[test]
    fn flushes_when_full_and_on_demand() {
        let mut mmu = Recorder::default();
        let mut q = UpdateQueue::<4>::new();
        for i in 0..9 {
            q.push(&mut mmu, req(i)).unwrap();
        }
        // Two full batches went out while pushing; one request waits.
        assert_eq!(mmu.batches.len(), 2);
        assert!(mmu.batches.iter().all(|b| b.len() == 4));
        assert_eq!(q.pending(), &[req(8)]);
        q.flush(&mut mmu).unwrap();
        assert!(q.is_empty());
        assert_eq!(mmu.applied, (0..9).map(req).collect::<Vec<_>>());
        // An empty flush sends nothing.
        q.flush(&mut mmu).unwrap();
        assert_eq!(mmu.batches.len(), 3);
        assert_eq!(q.stats(), (3, 9));
    }

    #[test]
    fn a_failure_names_the_request_and_drops_the_rest() {
        let mut mmu = Recorder {
            bad: Some(6),
            ..Recorder::default()
        };
        let mut q = UpdateQueue::<8>::new();
        for i in 4..8 {
            q.push(&mut mmu, req(i)).unwrap();
        }
        let err = q.flush(&mut mmu).unwrap_err();
        assert_eq!(
            err,
            MmError::Update {
                request: req(6),
                index: 2,
                applied: 2,
                errno: Errno::EINVAL
            }
        );
        assert_eq!(mmu.applied, [req(4), req(5)]);
        assert!(q.is_empty());
        // The queue is usable again.
        q.push(&mut mmu, req(9)).unwrap();
        q.flush(&mut mmu).unwrap();
        assert_eq!(mmu.applied.last(), Some(&req(9)));
    }

    #[test]
    fn a_hostile_done_count_is_clamped() {
        struct Liar;
        impl Mmu for Liar {
            fn pt_update(&mut self, _reqs: &[MmuUpdate]) -> Result<(), BatchFailure> {
                Err(BatchFailure {
                    done: usize::MAX,
                    errno: Errno::EFAULT,
                })
            }
            fn mmuext(&mut self, _ops: &[MmuextOp]) -> Result<(), BatchFailure> {
                Ok(())
            }
        }
        let mut q = UpdateQueue::<2>::new();
        q.push(&mut Liar, req(1)).unwrap();
        q.push(&mut Liar, req(2)).unwrap();
        let err = q.flush(&mut Liar).unwrap_err();
        assert!(matches!(err, MmError::Update { index: 1, .. }));
    }
}
