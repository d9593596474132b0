//! `set_segment_base`: a PV kernel cannot load segment bases itself (`wrfsbase` is off and
//! the MSRs are privileged), so it asks. Semantics of Xen's x86_64 `do_set_segment_base`.
#![forbid(unsafe_code)]

use super::Platform;
use hypercall_abi::arch::{SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL};
use hypercall_abi::errno::Errno;

/// Which base a `set_segment_base` call sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentBase {
    /// FS base (shared by the guest's kernel and user modes).
    Fs,
    /// GS base used while the guest kernel runs.
    GsKernel,
    /// GS base used while guest user mode runs.
    GsUser,
}

fn canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == 0x1_ffff
}

pub(super) fn set_segment_base(p: &mut impl Platform, which: u32, value: u64) -> Result<i64, Errno> {
    let (base, v) = match which {
        SEGBASE_FS => (SegmentBase::Fs, value),
        SEGBASE_GS_KERNEL => (SegmentBase::GsKernel, value),
        SEGBASE_GS_USER => (SegmentBase::GsUser, value),
        // Loading a user GS selector (Xen loads it into the user's %gs, or the null one if
        // that faults, and always succeeds): the user GS base becomes the descriptor's,
        // which is 0 for the flat descriptors kernels use here (Linux's __USER_DS); the
        // selector value itself is not kept.
        SEGBASE_GS_USER_SEL => (SegmentBase::GsUser, 0),
        _ => return Err(Errno::EINVAL),
    };
    if !canonical(v) {
        return Err(Errno::EINVAL);
    }
    p.set_segment_base(base, v)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::dispatch;
    use super::super::fake::*;
    use super::SegmentBase;
    use hypercall_abi::errno::Errno;

    const SET_SEGMENT_BASE: u64 = 25;

    #[test]
    fn bases_are_set_and_bad_values_refused() {
        let mut p = FakePlatform::new(false);
        assert_eq!(dispatch(&mut p, SET_SEGMENT_BASE, [0, 0x7000_1000, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, SET_SEGMENT_BASE, [2, 0xffff_ffff_8000_0000, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, SET_SEGMENT_BASE, [1, 0x1234, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, SET_SEGMENT_BASE, [3, 0, 0, 0, 0]), 0);
        assert_eq!(dispatch(&mut p, SET_SEGMENT_BASE, [3, 0x2b, 0, 0, 0]), 0, "Linux's __USER_DS, as Xen");
        assert_eq!(
            p.segment_bases,
            [
                (SegmentBase::Fs, 0x7000_1000),
                (SegmentBase::GsKernel, 0xffff_ffff_8000_0000),
                (SegmentBase::GsUser, 0x1234),
                (SegmentBase::GsUser, 0),
                (SegmentBase::GsUser, 0)
            ]
        );
        for (which, v) in [(0u64, 0x0000_8000_0000_0000u64), (2, 0xffff_7fff_ffff_ffff), (4, 0), (u64::MAX, 0)] {
            assert_eq!(dispatch(&mut p, SET_SEGMENT_BASE, [which, v, 0, 0, 0]), Errno::EINVAL.to_ret(), "{which} {v:#x}");
        }
        assert_eq!(p.segment_bases.len(), 5, "refusals change nothing");
    }
}
