"""Guest physical memory of a VM (include/libvmm/mem.h)."""
import ctypes
import enum
import errno
import mmap
from dataclasses import dataclass

from . import _lib
from . import _structs as S
from .errors import VmmError, check

PAGE_SIZE = 4096


class Backing(enum.IntEnum):
    MEMFD = 0
    ANON = 1
    FILE = 2
    HOST = 3


READONLY = 1 << 0
HUGEPAGES = 1 << 1
THP = 1 << 2
PRIVATE = 1 << 3


@dataclass(frozen=True)
class Region:
    """A region of the memory map (vmm_mem_region_info)."""
    gpa: int
    len: int
    host: int          # host address of gpa, for C extensions; do not keep it past removal
    fd: int            # borrowed backing fd, -1 for anonymous memory
    file_offset: int
    flags: int
    slot: int

    @property
    def readonly(self):
        return bool(self.flags & READONLY)

    @property
    def end(self):
        return self.gpa + self.len


def _buffer_arg(data):
    """(pointer-compatible object, length) for any bytes-like `data`, without a copy when
    it is writable or bytes."""
    if isinstance(data, bytes):
        return data, len(data)
    mv = memoryview(data)
    if not mv.contiguous:
        raise ValueError("buffer must be contiguous")
    n = mv.nbytes
    if n == 0:
        return None, 0
    if mv.readonly:
        return mv.tobytes(), n
    return (ctypes.c_char * n).from_buffer(mv.cast("B")), n


class Memory:
    """The memory map of a VM (borrowed: valid while its VM is open).

    Reads and writes are checked by the library: an access outside RAM raises
    VmmError(EFAULT), a write to read-only memory VmmError(EROFS)."""

    def __init__(self, vm):
        self._vm = vm
        self._maps = {}  # region gpa -> mmap of its fd (see view())

    @property
    def _h(self):
        return self._vm._mem_handle()

    def add_region(self, gpa, size, *, readonly=False, backing=Backing.MEMFD, fd=None,
                   file_offset=0, name=None, hugepages=False, thp=False, private=False):
        """Adds RAM at [gpa, gpa + size) (page aligned). backing MEMFD (default), ANON,
        or FILE with `fd` (dup'ed by the library). Returns the Region. Raises VmmError:
        EEXIST (overlap), EINVAL (misaligned, zero size), ENOSPC (no KVM slot left)."""
        if isinstance(backing, str):
            backing = Backing[backing.upper()]
        flags = (READONLY if readonly else 0) | (HUGEPAGES if hugepages else 0) | \
            (THP if thp else 0) | (PRIVATE if private else 0)
        o = S.vmm_mem_region_opts.new(flags=flags, gpa=gpa, len=size, backing=int(backing),
                                      fd=-1 if fd is None else int(fd),
                                      file_offset=file_offset,
                                      name=name.encode() if name else None)
        check(_lib.lib().vmm_mem_add_region(self._h, ctypes.byref(o)), "vmm_mem_add_region")
        return self.region_at(gpa)

    def remove_region(self, gpa):
        """Removes the region starting at `gpa` (VmmError ENOENT if none). Memoryviews
        from view() stay valid: they map the region's file themselves."""
        check(_lib.lib().vmm_mem_remove_region(self._h, gpa), "vmm_mem_remove_region")
        m = self._maps.pop(gpa, None)
        if m is not None:
            _close_map(m)

    def regions(self):
        """The regions, in GPA order."""
        L = _lib.lib()
        h = self._h
        out = []
        for i in range(L.vmm_mem_region_count(h)):
            info = S.vmm_mem_region_info()
            check(L.vmm_mem_get_region(h, i, ctypes.byref(info)), "vmm_mem_get_region")
            out.append(Region(info.gpa, info.len, info.host or 0, info.fd, info.file_offset,
                              info.flags, info.slot))
        return out

    def region_at(self, gpa):
        """The region containing `gpa` (VmmError ENOENT if none)."""
        for r in self.regions():
            if r.gpa <= gpa < r.end:
                return r
        raise VmmError(errno.ENOENT, f"no region contains {gpa:#x}", "Memory.region_at")

    def read(self, gpa, length):
        """`length` bytes of guest memory at `gpa`, as bytes."""
        buf = ctypes.create_string_buffer(length)
        check(_lib.lib().vmm_mem_read(self._h, gpa, buf, length), "vmm_mem_read")
        return buf.raw

    def read_into(self, gpa, buffer):
        """Fills the writable bytes-like `buffer` from guest memory at `gpa`; returns
        its length."""
        mv = memoryview(buffer)
        if mv.readonly:
            raise TypeError("read_into needs a writable buffer")
        n = mv.nbytes
        if n:
            arr = (ctypes.c_char * n).from_buffer(mv.cast("B"))
            check(_lib.lib().vmm_mem_read(self._h, gpa, arr, n), "vmm_mem_read")
        return n

    def write(self, gpa, data):
        """Writes bytes-like `data` (bytes, bytearray, memoryview, array, ...) to guest
        memory at `gpa`. Nothing is written on failure."""
        ptr, n = _buffer_arg(data)
        check(_lib.lib().vmm_mem_write(self._h, gpa, ptr, n), "vmm_mem_write")

    def read_u32(self, gpa):
        return int.from_bytes(self.read(gpa, 4), "little")

    def read_u64(self, gpa):
        return int.from_bytes(self.read(gpa, 8), "little")

    def write_u32(self, gpa, value):
        self.write(gpa, int(value).to_bytes(4, "little"))

    def write_u64(self, gpa, value):
        self.write(gpa, int(value).to_bytes(8, "little"))

    def translate(self, gpa, length=0, write=False):
        """The host address of [gpa, gpa + length) (checked). A raw pointer for C code:
        it is valid only until the region is removed or the VM closed."""
        p = ctypes.c_void_p()
        check(_lib.lib().vmm_mem_translate(self._h, gpa, length, write, ctypes.byref(p)),
              "vmm_mem_translate")
        return p.value or 0

    def view(self, gpa, length):
        """A memoryview onto guest RAM [gpa, gpa + length), without copying: writes
        through it are seen by the guest and the other way round. It maps the region's
        memfd or file a second time (mmap), so it stays valid (never dangles) even after
        the region is removed or the VM is closed. Read-only regions give a read-only
        view. Anonymous regions have no file to map: VmmError(ENOTSUP), use read/write.
        Host writes through a view are not seen by dirty tracking (vmm_mem_dirty_*)."""
        r = self.region_at(gpa)
        if length < 0 or gpa + length > r.end:
            raise VmmError(errno.EFAULT, f"[{gpa:#x}, +{length:#x}) crosses the end of its region",
                           "Memory.view")
        if r.fd < 0:
            raise VmmError(errno.ENOTSUP, "region has no memfd or file to map (anonymous memory)",
                           "Memory.view")
        m = self._maps.get(r.gpa)
        if m is None:
            prot = mmap.PROT_READ | (0 if r.readonly else mmap.PROT_WRITE)
            m = mmap.mmap(r.fd, r.len, flags=mmap.MAP_SHARED, prot=prot, offset=r.file_offset)
            self._maps[r.gpa] = m
        return memoryview(m)[gpa - r.gpa:gpa - r.gpa + length]

    # ---- dirty tracking ----
    def dirty_start(self):
        check(_lib.lib().vmm_mem_dirty_start(self._h), "vmm_mem_dirty_start")

    def dirty_stop(self):
        check(_lib.lib().vmm_mem_dirty_stop(self._h), "vmm_mem_dirty_stop")

    @property
    def dirty_enabled(self):
        return bool(_lib.lib().vmm_mem_dirty_enabled(self._h))

    def dirty_pages(self, region_gpa):
        """Fetches and clears the dirty log of the region at `region_gpa`: the GPAs of
        the pages written since the last call."""
        r = self.region_at(region_gpa)
        pages = r.len // PAGE_SIZE
        words = (pages + 63) // 64
        bm = (ctypes.c_uint64 * max(words, 1))()
        check(_lib.lib().vmm_mem_dirty_bitmap(self._h, r.gpa, bm, words), "vmm_mem_dirty_bitmap")
        out = []
        for w in range(words):
            v = bm[w]
            while v:
                b = (v & -v).bit_length() - 1
                out.append(r.gpa + (w * 64 + b) * PAGE_SIZE)
                v &= v - 1
        return out

    def _close_maps(self):
        for m in self._maps.values():
            _close_map(m)
        self._maps.clear()


def _close_map(m):
    try:
        m.close()
    except BufferError:
        pass  # views still exported: the mapping lives on until they go away
