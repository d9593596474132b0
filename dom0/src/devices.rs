//! dom0's machine devices, as Xen's hardware domain has them: PCI configuration through
//! ports 0xCF8/0xCFC (its `in`/`out` reach the hardware once its virtual IOPL is set),
//! the devices' registers mapped uncached in the device window, DMA from a
//! machine-contiguous pool (`XENMEM_exchange`), and each device's interrupt line as an
//! event channel (`PHYSDEVOP_map_pirq`, `EVTCHNOP_bind_pirq`, `PHYSDEVOP_eoi`).
//!
//! The drivers are the `virtio-drivers` crate's, behind its [`Hal`] ([`DomHal`]): the
//! device is given the pool's machine addresses, and a buffer outside the pool is bounced
//! through it. The disk found is `vda`: [`Disk`] reads, writes and flushes it, waiting for
//! its interrupt (the vCPU blocks), never polling.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use dom0::dma::DmaPool;
use hypercall_abi::errno::Errno;
use pv_guest::{events, physdev, println, time};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::pci::bus::{BarInfo, Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::xen_control::XenControl;

/// The DMA pool: 2^8 pages (1 MiB), machine-contiguous.
const DMA_POOL_ORDER: u32 = 8;

/// What the `Hal` needs, shared by every device: the pool, the bounce buffers lent out
/// (machine address → pages) and the device memory mapped (machine address, length,
/// virtual address).
struct DeviceMemory {
    pool: DmaPool,
    bounces: BTreeMap<u64, usize>,
    mmio: Vec<(u64, u64, u64)>,
}

static MEMORY: spin::Mutex<Option<DeviceMemory>> = spin::Mutex::new(None);

/// PCI configuration mechanism #1: the address at 0xCF8, the data at 0xCFC.
pub struct PortCam;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

fn config_address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000 | u32::from(df.bus) << 16 | u32::from(df.device & 31) << 11 | u32::from(df.function & 7) << 8 | u32::from(offset & 0xfc)
}

fn outl(port: u16, v: u32) {
    // SAFETY: `out` touches no memory of ours; in dom0's ring 3 it traps and the
    // hypervisor carries it out on the PCI configuration ports it lets dom0 reach.
    unsafe { core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags)) }
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as `outl`.
    unsafe { core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags)) }
    v
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        outl(CONFIG_ADDRESS, config_address(df, offset));
        inl(CONFIG_DATA)
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        outl(CONFIG_ADDRESS, config_address(df, offset));
        outl(CONFIG_DATA, data);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// The `virtio-drivers` platform layer over [`MEMORY`].
pub struct DomHal;

fn with_memory<R>(f: impl FnOnce(&mut DeviceMemory) -> R) -> R {
    let mut guard = MEMORY.lock();
    let memory = guard.as_mut().expect("a virtio device used before the DMA pool was made");
    f(memory)
}

// SAFETY: `dma_alloc` hands out zeroed runs of the pool that nothing else uses until
// `dma_dealloc`; `share` gives the device the machine address of the buffer itself when it
// lies in the pool (contiguous by construction) or of a bounce run holding its bytes, and
// `unshare` copies a bounce back before freeing it; `mmio_phys_to_virt` returns mappings
// made for good, of the registers asked for.
unsafe impl Hal for DomHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        with_memory(|m| match m.pool.alloc(pages) {
            Some((maddr, va)) => {
                // SAFETY: a run of the pool just taken, mapped writable, `pages` long.
                unsafe { core::ptr::write_bytes(va as *mut u8, 0, pages * 4096) };
                (maddr, NonNull::new(va as *mut u8).unwrap_or(NonNull::dangling()))
            }
            None => (0, NonNull::dangling()),
        })
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        with_memory(|m| if m.pool.free(paddr, pages) { 0 } else { -1 })
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        with_memory(|m| {
            let hit = m.mmio.iter().find(|&&(base, len, _)| paddr >= base && paddr + size as u64 <= base + len);
            let &(base, _, va) = hit.expect("device registers outside every BAR mapped");
            NonNull::new((va + (paddr - base)) as *mut u8).expect("a mapped BAR at address 0")
        })
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len();
        with_memory(|m| {
            if let Some(maddr) = m.pool.maddr_of(va, len as u64) {
                return maddr;
            }
            let pages = len.div_ceil(4096).max(1);
            let (maddr, bounce) = m.pool.alloc(pages).expect("the DMA pool is exhausted");
            if direction != BufferDirection::DeviceToDriver {
                // SAFETY: the caller's buffer is `len` readable bytes; the bounce run is ours.
                unsafe { core::ptr::copy_nonoverlapping(va as *const u8, bounce as *mut u8, len) };
            }
            m.bounces.insert(maddr, pages);
            maddr
        })
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        with_memory(|m| {
            let Some(pages) = m.bounces.remove(&paddr) else {
                return;
            };
            if direction != BufferDirection::DriverToDevice {
                if let Some(bounce) = m.pool.va_of(paddr) {
                    // SAFETY: the bounce run lent for this buffer, and the caller's buffer,
                    // `buffer.len()` writable bytes, given back to it now.
                    unsafe { core::ptr::copy_nonoverlapping(bounce as *const u8, buffer.as_ptr() as *mut u8, buffer.len()) };
                }
            }
            m.pool.free(paddr, pages);
        });
    }
}

/// `pages` of the DMA pool for good (a back-end's staging buffer): machine and virtual
/// address, if the pool exists and has them.
pub fn staging(pages: usize) -> Option<(u64, u64)> {
    MEMORY.lock().as_mut()?.pool.alloc(pages)
}

/// Set by the disk's event handler: its interrupt line fired.
static DISK_IRQ: AtomicBool = AtomicBool::new(false);

fn on_disk_irq(_port: u32) {
    DISK_IRQ.store(true, Ordering::SeqCst);
}

/// The machine's disk: a virtio-blk device, its interrupt bound to an event channel.
pub struct Disk {
    blk: VirtIOBlk<DomHal, PciTransport>,
    pirq: u32,
    /// Sectors of 512 bytes.
    pub sectors: u64,
    /// The device refuses writes.
    pub readonly: bool,
    /// Requests issued, and interrupts taken.
    pub requests: u64,
    /// Interrupts taken (events on its line, each acknowledged and EOIed).
    pub interrupts: u64,
}

/// A disk operation that failed: the device's answer or the driver's.
pub type DiskError = virtio_drivers::Error;

impl Disk {
    /// Acknowledges the device's interrupt, if it fired, and lets the line interrupt again.
    fn service_interrupt(&mut self) {
        if DISK_IRQ.swap(false, Ordering::SeqCst) {
            self.interrupts += 1;
            self.blk.ack_interrupt();
            let _ = physdev::eoi(self.pirq);
        }
    }

    /// Blocks until the request `token` is done (its interrupt came).
    fn wait(&mut self, token: u16) {
        self.requests += 1;
        loop {
            self.service_interrupt();
            if self.blk.peek_used() == Some(token) {
                // Its interrupt may not have come yet: quieten the device now (the ISR is
                // read-to-clear), or it would hold a shared line asserted, and the line
                // masked until its EOI, for whoever else is on it (the NIC).
                self.blk.ack_interrupt();
                return;
            }
            if time::block_until(&DISK_IRQ).is_err() {
                let _ = pv_guest::hypercall::sched_yield();
            }
        }
    }

    /// Reads whole sectors from `sector` into `buf` (a multiple of 512 bytes).
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: `req`, `buf` and `resp` are not touched until the request completes
        // below, with the same buffers.
        let token = unsafe { self.blk.read_blocks_nb(sector as usize, &mut req, buf, &mut resp)? };
        self.wait(token);
        // SAFETY: the buffers of `read_blocks_nb` for this token.
        unsafe { self.blk.complete_read_blocks(token, &req, buf, &mut resp) }
    }

    /// Writes whole sectors from `buf` at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: as in `read`.
        let token = unsafe { self.blk.write_blocks_nb(sector as usize, &mut req, buf, &mut resp)? };
        self.wait(token);
        // SAFETY: the buffers of `write_blocks_nb` for this token.
        unsafe { self.blk.complete_write_blocks(token, &req, buf, &mut resp) }
    }

    /// Makes every write done so far durable (the device's cache flushed).
    pub fn flush(&mut self) -> Result<(), DiskError> {
        // The crate's flush waits for the device by polling its ring: short, and rare.
        self.blk.flush()
    }
}

/// The bytes of `n` sectors, for messages.
fn mib(sectors: u64) -> u64 {
    (sectors * SECTOR_SIZE as u64) >> 20
}

/// Finds the machine's devices: takes the I/O privilege, makes the DMA pool, and starts
/// the first virtio-blk disk on PCI bus 0 with its interrupt as an event. Each step that
/// fails is reported on one line and leaves dom0 without the device.
pub fn probe(ctl: &mut XenControl) -> Option<Disk> {
    if let Err(e) = physdev::set_iopl(1) {
        println!("dom0: devices: cannot take the I/O privilege: {e}; no devices");
        return None;
    }
    let mut root = PciRoot::new(PortCam);
    let found = root.enumerate_bus(0).find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Block));
    let Some((df, _)) = found else {
        println!("dom0: devices: no disk (no virtio-blk device on PCI bus 0)");
        return None;
    };
    match start_disk(ctl, &mut root, df) {
        Ok(disk) => Some(disk),
        Err(why) => {
            println!("dom0: pci {df}: virtio-blk: {why}; no disk");
            None
        }
    }
}

/// Makes the DMA pool (once), maps `df`'s memory BARs, turns on its decoding and bus
/// mastering, and reads its legacy interrupt line.
fn enable_device(ctl: &mut XenControl, root: &mut PciRoot<PortCam>, df: DeviceFunction) -> Result<u8, alloc::string::String> {
    use alloc::format;
    if MEMORY.lock().is_none() {
        let (maddr, va) = ctl.dma_extent(DMA_POOL_ORDER).map_err(|e| format!("no DMA pool: {e}"))?;
        *MEMORY.lock() = Some(DeviceMemory { pool: DmaPool::new(maddr, va, 1 << DMA_POOL_ORDER), bounces: BTreeMap::new(), mmio: Vec::new() });
    }
    let bars = root.bars(df).map_err(|e| format!("reading its BARs: {e:?}"))?;
    for bar in bars.iter().flatten() {
        if let BarInfo::Memory { address, size, .. } = *bar {
            if size == 0 || address == 0 {
                continue;
            }
            let va = ctl.map_device_memory(address, size).map_err(|e| format!("mapping its registers at {address:#x}: {e}"))?;
            with_memory(|m| m.mmio.push((address, size, va)));
        }
    }
    root.set_command(df, Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER);
    let line = PortCam.read_word(df, 0x3c);
    let (irq, pin) = ((line & 0xff) as u8, (line >> 8) as u8);
    if pin == 0 || irq >= 16 {
        return Err(format!("no interrupt line (pin {pin}, line {irq})"));
    }
    Ok(irq)
}

/// Devices that may share one legacy interrupt line (PCI INTx lines are shared: QEMU puts
/// the disk and the NIC on the same one).
const SHARERS: usize = 4;

/// An interrupt line bound to an event channel, and the handlers of the devices on it.
struct Line {
    irq: AtomicU32,
    pirq: AtomicU32,
    port: AtomicU32,
    handlers: [spin::Once<events::PortHandler>; SHARERS],
}

const UNBOUND: u32 = u32::MAX;

/// The lines bound so far (one slot each; set at probe time, read by the handler).
static LINES: [Line; 4] = [const { Line { irq: AtomicU32::new(UNBOUND), pirq: AtomicU32::new(0), port: AtomicU32::new(UNBOUND), handlers: [const { spin::Once::new() }; SHARERS] } }; 4];

/// The one handler of every device line: runs the handlers of the devices sharing it.
fn on_line(port: u32) {
    for line in LINES.iter().filter(|l| l.port.load(Ordering::SeqCst) == port) {
        for h in line.handlers.iter().filter_map(spin::Once::get) {
            h(port);
        }
    }
}

/// Binds legacy interrupt `irq` to an event channel (once per line) and adds `handler` to
/// the devices on it, unmasked: the pirq and the port.
fn bind_irq(irq: u8, handler: events::PortHandler) -> Result<(u32, u32), alloc::string::String> {
    use alloc::format;
    let irq32 = u32::from(irq);
    let (line, joined) = match LINES.iter().find(|l| l.irq.load(Ordering::SeqCst) == irq32) {
        Some(line) => (line, true),
        None => {
            let line = LINES.iter().find(|l| l.irq.load(Ordering::SeqCst) == UNBOUND).ok_or("no room for another interrupt line")?;
            let pirq = physdev::map_gsi(irq32).map_err(|e| format!("mapping irq {irq}: {e}"))?;
            let port = events::bind_pirq(pirq).map_err(|e| format!("binding irq {irq}: {e}"))?;
            events::set_handler(port, on_line).map_err(|e: Errno| format!("irq {irq}: {e}"))?;
            line.pirq.store(pirq, Ordering::SeqCst);
            line.port.store(port, Ordering::SeqCst);
            line.irq.store(irq32, Ordering::SeqCst);
            events::unmask(port).map_err(|e| format!("irq {irq}: {e}"))?;
            (line, false)
        }
    };
    let slot = line.handlers.iter().find(|h| h.get().is_none()).ok_or_else(|| format!("irq {irq}: more than {SHARERS} devices share it"))?;
    slot.call_once(|| handler);
    if joined {
        // An interrupt the line took before this handler existed may have left it masked,
        // waiting for an EOI that only this device's handling would now send: send it.
        // (Each device quietens itself as it completes work, so this cannot storm.)
        let _ = physdev::eoi(line.pirq.load(Ordering::SeqCst));
    }
    Ok((line.pirq.load(Ordering::SeqCst), line.port.load(Ordering::SeqCst)))
}

fn start_disk(ctl: &mut XenControl, root: &mut PciRoot<PortCam>, df: DeviceFunction) -> Result<Disk, alloc::string::String> {
    use alloc::format;
    let irq = enable_device(ctl, root, df)?;
    let transport = PciTransport::new::<DomHal, _>(root, df).map_err(|e| format!("{e}"))?;
    let blk = VirtIOBlk::<DomHal, _>::new(transport).map_err(|e| format!("{e}"))?;
    let (pirq, port) = bind_irq(irq, on_disk_irq)?;
    let disk = Disk { sectors: blk.capacity(), readonly: blk.readonly(), blk, pirq, requests: 0, interrupts: 0 };
    println!(
        "dom0: pci {df}: virtio-blk vda: {} MiB ({} sectors){}, irq {irq} as event port {port}",
        mib(disk.sectors),
        disk.sectors,
        if disk.readonly { ", read-only" } else { "" }
    );
    Ok(disk)
}

/// Reads `vda`'s partition table and reports it, one line per partition; the partitions,
/// by number and extent.
pub fn partitions(disk: &mut Disk) -> Vec<dom0::blkback::PartitionExtent> {
    let sectors = disk.sectors;
    let mut read = |sector: u64, buf: &mut [u8]| disk.read(sector, buf).map_err(|_| ());
    match partitions::read(sectors, &mut read) {
        Ok(parts) => {
            println!("dom0: vda: GPT, {} partition(s) (read in {} requests, {} interrupts)", parts.len(), disk.requests, disk.interrupts);
            for p in &parts {
                println!("dom0: vda{}: \"{}\", {} MiB from sector {}", p.number, p.name, mib(p.sectors), p.first);
            }
            parts.iter().map(|p| (p.number, dom0::blkback::Extent { first: p.first, sectors: p.sectors })).collect()
        }
        Err(e) => {
            println!("dom0: vda: no partitions: {e}");
            Vec::new()
        }
    }
}

/// Receive buffers the NIC keeps posted.
const NIC_QUEUE: usize = 16;
/// Each receive buffer's size: a frame and the virtio-net header.
const NIC_BUF: usize = 2048;

/// Set by the NIC's event handler: its interrupt line fired.
pub static NIC_IRQ: AtomicBool = AtomicBool::new(false);

/// The machine's NIC: a virtio-net device, its interrupt bound to an event channel. dom0's
/// switch uses it as its uplink.
pub struct Nic {
    net: VirtIONet<DomHal, PciTransport, NIC_QUEUE>,
    pirq: u32,
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Sends that failed.
    pub send_errors: u64,
}

impl Nic {
    /// Acknowledges the NIC's interrupt, if it fired, and lets the line interrupt again.
    fn service_interrupt(&mut self) {
        if NIC_IRQ.swap(false, Ordering::SeqCst) {
            self.net.ack_interrupt();
            let _ = physdev::eoi(self.pirq);
        }
    }

    /// The frames received since the last call (their buffers posted again).
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        self.service_interrupt();
        let mut frames = Vec::new();
        while self.net.can_recv() {
            match self.net.receive() {
                Ok(buf) => {
                    frames.push(buf.packet().to_vec());
                    self.received += 1;
                    let _ = self.net.recycle_rx_buffer(buf);
                }
                Err(_) => break,
            }
        }
        frames
    }

    /// Sends `frame` (the crate waits for the device to take it).
    pub fn send(&mut self, frame: &[u8]) {
        let mut tx = self.net.new_tx_buffer(frame.len());
        tx.packet_mut().copy_from_slice(frame);
        match self.net.send(tx) {
            Ok(()) => self.sent += 1,
            Err(_) => self.send_errors += 1,
        }
    }
}

/// Starts the first virtio-net device on PCI bus 0 with its interrupt as an event running
/// `on_irq` (which must set [`NIC_IRQ`]); `None`, with one line saying why, if there is
/// none or it does not start.
pub fn probe_nic(ctl: &mut XenControl, on_irq: events::PortHandler) -> Option<Nic> {
    if physdev::set_iopl(1).is_err() {
        return None;
    }
    let mut root = PciRoot::new(PortCam);
    let (df, _) = root.enumerate_bus(0).find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))?;
    let start = |ctl: &mut XenControl, root: &mut PciRoot<PortCam>| -> Result<Nic, alloc::string::String> {
        use alloc::format;
        let irq = enable_device(ctl, root, df)?;
        let transport = PciTransport::new::<DomHal, _>(root, df).map_err(|e| format!("{e}"))?;
        let net = VirtIONet::<DomHal, _, NIC_QUEUE>::new(transport, NIC_BUF).map_err(|e| format!("{e}"))?;
        let (pirq, port) = bind_irq(irq, on_irq)?;
        let mac = net.mac_address();
        let nic = Nic { net, pirq, sent: 0, received: 0, send_errors: 0 };
        println!(
            "dom0: pci {df}: virtio-net eth0: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, irq {irq} as event port {port}; the switch's uplink",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        );
        Ok(nic)
    };
    match start(ctl, &mut root) {
        Ok(nic) => Some(nic),
        Err(why) => {
            println!("dom0: pci {df}: virtio-net: {why}; no uplink");
            None
        }
    }
}
