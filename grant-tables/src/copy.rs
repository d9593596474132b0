//! A batch of `GNTTABOP_copy` operations with each side's claim kept from one operation to
//! the next while it names the same buffer (Xen's `gnttab_copy_buf` reuse in
//! `gnttab_copy`): a grant stays pinned, and its frame referenced, across consecutive
//! copies from (or to) it, instead of being pinned and released once per operation.
//!
//! Every operation still gets exactly the status it would get alone, in Xen's order of
//! checks (source pin, destination pin, source frame, destination frame): a side held over
//! from the previous operation passed all of its checks already, and nothing else runs
//! between two operations of one batch. Whatever is held is given back by
//! [`CopyBatch::finish`], which the machine calls at the end of every chunk of operations,
//! whatever their outcome, before the hypercall ends, continues itself or fails.

use super::*;

/// One side of a copy, its domain already checked by the machine (Xen's
/// `gnttab_copy_lock_domains`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopySide {
    /// Grant reference `gref` (as the guest wrote it: a value past `u32` is
    /// `GNTST_bad_gntref`) of domain `dom`.
    Gref {
        /// The granting domain.
        dom: u16,
        /// The reference.
        gref: u64,
    },
    /// Frame `frame`, which domain `dom` (the caller) must own.
    Frame {
        /// The owner it must have.
        dom: u16,
        /// The frame.
        frame: u64,
    },
}

impl CopySide {
    fn owner(self) -> u16 {
        match self {
            CopySide::Gref { dom, .. } | CopySide::Frame { dom, .. } => dom,
        }
    }
}

/// The frame half of a copy: page references, which the machine's page-type rules own.
pub trait CopyFrames {
    /// Takes a general reference on `frame`, which `owner` must own, and for a destination
    /// (`write`) the writable type: `GNTST_bad_page` if not (nothing taken).
    fn claim(&mut self, frame: u64, owner: u16, write: bool) -> Result<(), Status>;
    /// Drops what [`CopyFrames::claim`] took.
    fn release(&mut self, frame: u64, write: bool);
    /// Copies `len` bytes between two claimed frames (bounds already checked).
    fn copy(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize);
}

/// A side claimed whole: its grant pinned (for a reference) and its frame referenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    side: CopySide,
    frame: u64,
    /// The part of the frame granted (a v2 sub-page grant; else the whole frame).
    start: u16,
    length: u16,
}

impl Held {
    /// Whether `len` bytes at `off` lie inside the granted part (Xen's "copy beyond page
    /// area" check).
    fn covers(&self, off: usize, len: usize) -> bool {
        off >= usize::from(self.start) && off + len <= usize::from(self.start) + usize::from(self.length)
    }
}

/// The sides held between the operations of one batch of copies.
#[derive(Debug, Default)]
pub struct CopyBatch {
    src: Option<Held>,
    dst: Option<Held>,
}

/// The grant and shared-entry state a copy works on.
pub struct CopyGrants<'a> {
    /// Every domain's grant state.
    pub grants: &'a mut Grants,
    /// The granters' shared entries.
    pub mem: &'a mut dyn EntryMemory,
    /// The domain doing the copy.
    pub caller: u16,
}

impl CopyGrants<'_> {
    /// Pins a reference side; a frame side is its whole frame.
    fn pin(&mut self, side: CopySide, write: bool) -> Result<Pinned, Status> {
        match side {
            CopySide::Gref { dom, gref } => {
                let gref = u32::try_from(gref).map_err(|_| GNTST_BAD_GNTREF)?;
                self.grants.copy_acquire(self.mem, self.caller, dom, gref, write)
            }
            CopySide::Frame { frame, .. } => Ok(Pinned { frame, start: 0, length: 4096 }),
        }
    }

    fn unpin(&mut self, side: CopySide, write: bool) {
        if let CopySide::Gref { dom, gref } = side {
            // Only a side that was pinned is unpinned, so `gref` fits.
            self.grants.copy_release(self.mem, dom, gref as u32, write);
        }
    }
}

impl CopyBatch {
    /// No side held.
    pub const fn new() -> Self {
        CopyBatch { src: None, dst: None }
    }

    /// Whether a side is held (tests; the machine always finishes).
    pub fn holds_any(&self) -> bool {
        self.src.is_some() || self.dst.is_some()
    }

    fn drop_side(held: &mut Option<Held>, g: &mut CopyGrants<'_>, frames: &mut dyn CopyFrames, write: bool) {
        if let Some(h) = held.take() {
            frames.release(h.frame, write);
            g.unpin(h.side, write);
        }
    }

    /// One copy of `len` bytes from offset `src_off` of `src` to offset `dst_off` of `dst`
    /// (bounds and domains already checked by the machine, as Xen before
    /// `gnttab_copy_claim_buf`). On success both sides stay held for the next operation; on
    /// failure only what was held before this operation still is.
    #[allow(clippy::too_many_arguments)] // the two sides of a copy, as Xen's gnttab_copy
    pub fn copy(&mut self, g: &mut CopyGrants<'_>, frames: &mut dyn CopyFrames, src: CopySide, src_off: usize, dst: CopySide, dst_off: usize, len: usize) -> Result<(), Status> {
        // A held side this operation does not name is given back first (Xen's
        // gnttab_copy_release_buf when gnttab_copy_buf_valid fails).
        if self.src.is_some_and(|h| h.side != src) {
            Self::drop_side(&mut self.src, g, frames, false);
        }
        if self.dst.is_some_and(|h| h.side != dst) {
            Self::drop_side(&mut self.dst, g, frames, true);
        }
        let (new_src, new_dst) = (self.src.is_none(), self.dst.is_none());
        // Pins, source first.
        let src_pin = match self.src {
            Some(h) => Pinned { frame: h.frame, start: h.start, length: h.length },
            None => g.pin(src, false)?,
        };
        let dst_pin = match self.dst {
            Some(h) => Pinned { frame: h.frame, start: h.start, length: h.length },
            None => match g.pin(dst, true) {
                Ok(f) => f,
                Err(st) => {
                    if new_src {
                        g.unpin(src, false);
                    }
                    return Err(st);
                }
            },
        };
        let (src_frame, dst_frame) = (src_pin.frame, dst_pin.frame);
        let src_held = Held { side: src, frame: src_frame, start: src_pin.start, length: src_pin.length };
        let dst_held = Held { side: dst, frame: dst_frame, start: dst_pin.start, length: dst_pin.length };
        // Then the frames, source first.
        let undo_pins = |g: &mut CopyGrants<'_>| {
            if new_src {
                g.unpin(src, false);
            }
            if new_dst {
                g.unpin(dst, true);
            }
        };
        // A sub-page grant covers only its part (Xen's gnttab_copy_buf check, made before
        // the frames here: a refused copy claims nothing).
        if !src_held.covers(src_off, len) || !dst_held.covers(dst_off, len) {
            undo_pins(g);
            return Err(GNTST_GENERAL_ERROR);
        }
        if new_src {
            if let Err(st) = frames.claim(src_frame, src.owner(), false) {
                undo_pins(g);
                return Err(st);
            }
        }
        if new_dst {
            if let Err(st) = frames.claim(dst_frame, dst.owner(), true) {
                if new_src {
                    frames.release(src_frame, false);
                }
                undo_pins(g);
                return Err(st);
            }
        }
        self.src = Some(src_held);
        self.dst = Some(dst_held);
        frames.copy(dst_frame, dst_off, src_frame, src_off, len);
        Ok(())
    }

    /// Gives back every held side: frames first, then pins (the order of one copy's own
    /// release).
    pub fn finish(&mut self, g: &mut CopyGrants<'_>, frames: &mut dyn CopyFrames) {
        let (src, dst) = (self.src.take(), self.dst.take());
        if let Some(h) = dst {
            frames.release(h.frame, true);
        }
        if let Some(h) = src {
            frames.release(h.frame, false);
        }
        if let Some(h) = src {
            g.unpin(h.side, false);
        }
        if let Some(h) = dst {
            g.unpin(h.side, true);
        }
    }
}
