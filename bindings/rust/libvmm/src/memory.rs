//! Guest physical memory: regions, checked access, dirty tracking, ELF loading.
use crate::error::{check, errno, Error, Result};
use crate::panic;
use crate::vm::path_cstring;
use libvmm_sys as sys;
use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_int, c_void};
use std::os::unix::io::RawFd;
use std::path::Path;
use std::ptr::NonNull;

/// What backs a region's memory (`vmm_mem_backing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A sealed-size memfd (default; shareable, snapshot friendly).
    Memfd,
    /// Private anonymous memory.
    Anon,
    /// The caller's file (the library keeps a duplicate of `fd`).
    File { fd: RawFd, offset: u64 },
}

/// A memory region to add (`vmm_mem_region_opts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub gpa: u64,
    pub len: u64,
    pub backing: Backing,
    /// VMM_MEM_* flags (READONLY, HUGEPAGES, THP, PRIVATE).
    pub flags: u32,
    pub name: Option<String>,
}

impl Region {
    /// `len` bytes of memfd-backed RAM at `gpa` (both page aligned).
    pub fn new(gpa: u64, len: u64) -> Region {
        Region { gpa, len, backing: Backing::Memfd, flags: 0, name: None }
    }

    pub fn backing(mut self, backing: Backing) -> Region {
        self.backing = backing;
        self
    }

    pub fn flags(mut self, flags: u32) -> Region {
        self.flags = flags;
        self
    }

    pub fn read_only(mut self) -> Region {
        self.flags |= sys::VMM_MEM_READONLY;
        self
    }

    pub fn name(mut self, name: &str) -> Region {
        self.name = Some(name.to_string());
        self
    }

    /// # Safety
    /// No other thread may access the map meanwhile.
    pub(crate) unsafe fn add_to(&self, mem: *mut sys::vmm_mem) -> Result<()> {
        let name = match &self.name {
            Some(n) => Some(CString::new(n.as_str()).map_err(|_| Error::new(errno::EINVAL, "name contains NUL"))?),
            None => None,
        };
        let mut o = sys::vmm_mem_region_opts::default();
        o.gpa = self.gpa;
        o.len = self.len;
        o.flags = self.flags;
        match self.backing {
            Backing::Memfd => o.backing = sys::VMM_MEM_MEMFD,
            Backing::Anon => o.backing = sys::VMM_MEM_ANON,
            Backing::File { fd, offset } => {
                o.backing = sys::VMM_MEM_FILE;
                o.fd = fd;
                o.file_offset = offset;
            }
        }
        o.name = name.as_ref().map(|c| c.as_ptr()).unwrap_or(std::ptr::null());
        check(sys::vmm_mem_add_region(mem, &o)).map(|_| ())
    }
}

/// A region as the map reports it.
pub type RegionInfo = sys::vmm_mem_region_info;

/// What `load_elf` loaded.
pub type ElfInfo = sys::vmm_elf_info;

/// A view of a memory map: a VM's (`Vm::memory`) or a standalone one's.
///
/// Thread safety (mem.h): read, write, translate and the dirty-log calls may run
/// concurrently on any thread, so the view is `Send` and `Sync`; changing the map needs
/// `&mut` on its owner, so no view exists meanwhile.
#[derive(Clone, Copy)]
pub struct Memory<'a> {
    raw: NonNull<sys::vmm_mem>,
    _owner: PhantomData<&'a ()>,
}

// SAFETY: see the type's documentation.
unsafe impl Send for Memory<'_> {}
unsafe impl Sync for Memory<'_> {}

unsafe extern "C" fn dirty_trampoline<F: FnMut(u64, u64) -> bool>(ctx: *mut c_void, gpa: u64, npages: u64) -> c_int {
    // SAFETY: ctx is the &mut F passed to vmm_mem_dirty_collect, alive during the call.
    let f = &mut *(ctx as *mut F);
    panic::guard(1, || if f(gpa, npages) { 0 } else { 1 })
}

impl<'a> Memory<'a> {
    /// # Safety
    /// `raw` must be a valid map that outlives 'a and does not change during 'a.
    pub unsafe fn from_raw(raw: *mut sys::vmm_mem) -> Memory<'a> {
        Memory { raw: NonNull::new(raw).expect("vmm_mem pointer is NULL"), _owner: PhantomData }
    }

    pub fn as_raw(&self) -> *mut sys::vmm_mem {
        self.raw.as_ptr()
    }

    /// Copies guest memory at `gpa` into `buf` (may span adjacent regions).
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        // SAFETY: buf is valid for buf.len() bytes.
        check(unsafe { sys::vmm_mem_read(self.as_raw(), gpa, buf.as_mut_ptr() as *mut c_void, buf.len()) })
            .map(|_| ())
    }

    /// Copies `data` into guest memory at `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<()> {
        // SAFETY: data is valid for data.len() bytes.
        check(unsafe { sys::vmm_mem_write(self.as_raw(), gpa, data.as_ptr() as *const c_void, data.len()) })
            .map(|_| ())
    }

    pub fn read_vec(&self, gpa: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(gpa, &mut v)?;
        Ok(v)
    }

    pub fn read_u32(&self, gpa: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_u64(&self, gpa: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_u32(&self, gpa: u64, v: u32) -> Result<()> {
        self.write(gpa, &v.to_le_bytes())
    }

    pub fn write_u64(&self, gpa: u64, v: u64) -> Result<()> {
        self.write(gpa, &v.to_le_bytes())
    }

    /// The host address of [gpa, gpa+len) if it lies in one region (and is writable,
    /// with `write`). The pointer stays valid while the region exists; the guest may
    /// change the memory at any time, so access it with volatile or atomic operations.
    pub fn translate(&self, gpa: u64, len: u64, write: bool) -> Result<*mut u8> {
        let mut host = std::ptr::null_mut();
        // SAFETY: host is a valid out pointer.
        check(unsafe { sys::vmm_mem_translate(self.as_raw(), gpa, len, write, &mut host) })?;
        Ok(host as *mut u8)
    }

    pub fn region_count(&self) -> usize {
        // SAFETY: the map is alive.
        unsafe { sys::vmm_mem_region_count(self.as_raw()) }
    }

    /// Every region, in GPA order.
    pub fn regions(&self) -> Result<Vec<RegionInfo>> {
        (0..self.region_count())
            .map(|i| {
                let mut info = RegionInfo::default();
                // SAFETY: info is a valid out pointer.
                check(unsafe { sys::vmm_mem_get_region(self.as_raw(), i, &mut info) })?;
                Ok(info)
            })
            .collect()
    }

    pub fn dirty_start(&self) -> Result<()> {
        // SAFETY: any thread.
        check(unsafe { sys::vmm_mem_dirty_start(self.as_raw()) }).map(|_| ())
    }

    pub fn dirty_stop(&self) -> Result<()> {
        // SAFETY: any thread.
        check(unsafe { sys::vmm_mem_dirty_stop(self.as_raw()) }).map(|_| ())
    }

    pub fn dirty_enabled(&self) -> bool {
        // SAFETY: any thread.
        unsafe { sys::vmm_mem_dirty_enabled(self.as_raw()) }
    }

    /// Fetches and clears the dirty log, calling `f(first_page_gpa, npages)` for each
    /// run of dirty pages; `f` returns false to stop (the rest stays dirty). `f` must
    /// not call the dirty_* functions of this map (the map's dirty-log lock is held).
    pub fn dirty_collect<F: FnMut(u64, u64) -> bool>(&self, mut f: F) -> Result<bool> {
        // SAFETY: f outlives the call; the trampoline matches its type.
        let r = unsafe {
            sys::vmm_mem_dirty_collect(self.as_raw(), Some(dirty_trampoline::<F>), &mut f as *mut F as *mut c_void)
        };
        panic::resume();
        if r > 0 {
            return Ok(false);
        }
        check(r).map(|_| true)
    }

    /// The dirty runs as (gpa, npages) pairs, clearing the log.
    pub fn dirty_runs(&self) -> Result<Vec<(u64, u64)>> {
        let mut v = Vec::new();
        self.dirty_collect(|gpa, n| {
            v.push((gpa, n));
            true
        })?;
        Ok(v)
    }

    /// Loads a static x86_64 ELF image's PT_LOAD segments at their physical addresses.
    pub fn load_elf(&self, image: &[u8]) -> Result<ElfInfo> {
        let mut info = ElfInfo::default();
        // SAFETY: image and info are valid for the call.
        check(unsafe { sys::vmm_elf_load(self.as_raw(), image.as_ptr() as *const c_void, image.len(), &mut info) })?;
        Ok(info)
    }

    pub fn load_elf_file(&self, path: impl AsRef<Path>) -> Result<ElfInfo> {
        let p = path_cstring(path.as_ref())?;
        let mut info = ElfInfo::default();
        // SAFETY: p and info are valid for the call.
        check(unsafe { sys::vmm_elf_load_file(self.as_raw(), p.as_ptr(), &mut info) })?;
        Ok(info)
    }
}

/// A memory map without a VM (`vmm_mem_create`), for tools and tests.
pub struct MemoryMap {
    raw: NonNull<sys::vmm_mem>,
}

// SAFETY: a standalone map is plain data guarded by the library's locks; changes need
// &mut MemoryMap.
unsafe impl Send for MemoryMap {}
unsafe impl Sync for MemoryMap {}

impl MemoryMap {
    pub fn new() -> Result<MemoryMap> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: raw is a valid out pointer.
        check(unsafe { sys::vmm_mem_create(&mut raw) })?;
        Ok(MemoryMap { raw: NonNull::new(raw).expect("vmm_mem_create returned NULL") })
    }

    pub fn add_region(&mut self, region: &Region) -> Result<()> {
        // SAFETY: &mut self: no view exists.
        unsafe { region.add_to(self.raw.as_ptr()) }
    }

    pub fn remove_region(&mut self, gpa: u64) -> Result<()> {
        // SAFETY: &mut self: no view exists.
        check(unsafe { sys::vmm_mem_remove_region(self.raw.as_ptr(), gpa) }).map(|_| ())
    }

    pub fn memory(&self) -> Memory<'_> {
        // SAFETY: the map lives and cannot change while the view borrows self.
        unsafe { Memory::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for MemoryMap {
    fn drop(&mut self) {
        // SAFETY: we own the map.
        unsafe { sys::vmm_mem_destroy(self.raw.as_ptr()) }
    }
}
