//! Raw declarations of the libvmm C API (`include/libvmm/*.h`), written by hand.
//!
//! Names, types, struct layouts and constant values are those of the headers, one for
//! one: read the header comments for what each function does, who owns what and which
//! thread may call it. Every options struct implements `Default` as its `_INIT` macro
//! does (`size` set to the struct's size); other structs default to all zeros.
//!
//! `tests/layout.rs` compiles a C program against the real headers to check that these
//! declarations match them: function signatures, struct sizes, alignments, field
//! offsets and field types, constant values and the `_INIT` values; and that every
//! function, struct, enumerator and constant of the headers is declared here.
//!
//! Linking: `build.rs` looks for libvmm in `LIBVMM_LIB_DIR`, then with `pkg-config`,
//! then in the standard library directories. `LIBVMM_STATIC=1` links `libvmm.a`.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

/// extern "C" declarations plus a list of their C spellings (for tests/layout.rs).
macro_rules! c_fns {
    (@ret) => { () };
    (@ret $r:ty) => { $r };
    ($( $(#[$m:meta])* pub fn $name:ident($($arg:ident : $t:ty),* $(,)?) $(-> $r:ty)?; )*) => {
        extern "C" {
            $( $(#[$m])* pub fn $name($($arg: $t),*) $(-> $r)?; )*
        }
        #[doc(hidden)]
        pub(crate) fn c_fn_decls() -> Vec<(&'static str, String)> {
            vec![$((stringify!($name), $crate::ctype::fn_decl::<c_fns!(@ret $($r)?)>(
                stringify!($name), &[$(<$t as $crate::ctype::CType>::c_decl("", "")),*]))),*]
        }
    };
}

/// `#define` constants, plus the list of their values (for tests/layout.rs).
macro_rules! c_consts {
    ($( $(#[$m:meta])* pub const $name:ident : $t:ty = $v:expr; )*) => {
        $( $(#[$m])* pub const $name: $t = $v; )*
        #[doc(hidden)]
        pub(crate) fn c_const_values() -> Vec<(&'static str, i128)> {
            vec![$((stringify!($name), $crate::ctype::ConstValue::value(&$name))),*]
        }
    };
}

/// A C enum: a transparent u32 newtype (C's enums here are unsigned int) and one
/// constant per enumerator.
macro_rules! c_enum {
    ($(#[$m:meta])* pub enum $t:ident { $($(#[$vm:meta])* $v:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $t(pub u32);
        $( $(#[$vm])* pub const $v: $t = $t($val); )*
        impl $crate::ctype::CType for $t {
            fn c_decl(name: &str, qual: &str) -> String {
                $crate::ctype::named(stringify!($t), qual, name)
            }
        }
        impl $t {
            #[doc(hidden)]
            pub fn c_values() -> Vec<(&'static str, i128)> {
                vec![$((stringify!($v), $val as i128)),*]
            }
        }
    };
}

/// Opaque handle types (`typedef struct vmm_vm vmm_vm;`).
macro_rules! c_opaque {
    ($($(#[$m:meta])* $t:ident),* $(,)?) => { $(
        $(#[$m])*
        #[repr(C)]
        pub struct $t {
            _private: [u8; 0],
            _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
        }
        c_named!($t);
    )* };
}

/// The C spelling of a struct type is its name.
macro_rules! c_named {
    ($($t:ident),* $(,)?) => { $(
        impl $crate::ctype::CType for $t {
            fn c_decl(name: &str, qual: &str) -> String {
                $crate::ctype::named(stringify!($t), qual, name)
            }
        }
    )* };
}

/// `Default` as all-zero bytes (valid for these structs: integers, bools, raw pointers,
/// Option<fn>, enum newtypes).
macro_rules! zeroed_default {
    ($($t:ident),* $(,)?) => { $(
        impl Default for $t {
            fn default() -> Self {
                // SAFETY: every field of $t is valid as all-zero bytes.
                unsafe { core::mem::zeroed() }
            }
        }
    )* };
}

/// `Default` for the options structs whose _INIT macro is `sizeof` and zeros.
macro_rules! size_and_zeros_default {
    ($($t:ident),* $(,)?) => { $(
        impl Default for $t {
            fn default() -> Self {
                // SAFETY: all-zero is valid for every field; then `size` is set.
                let mut o: Self = unsafe { core::mem::zeroed() };
                o.size = core::mem::size_of::<Self>() as u32;
                o
            }
        }
    )* };
}

/// Layout description of a struct for tests/layout.rs. `struct` checks that every Rust
/// field is listed (an exhaustive pattern); `init` also records the Default value;
/// `anon` and `union` describe a struct or union the header leaves anonymous inside
/// `root` at member path `path`. `field = "c_name"` names a C field that is a Rust
/// keyword (`type`, `loop`, `fn`, `in`); `field @anon` has an anonymous C type.
macro_rules! layout {
    (@chk) => { true };
    (@chk $anon:ident) => { false };
    (@name $f:ident) => { stringify!($f) };
    (@name $f:ident $c:literal) => { $c };
    (@init $t:ident, yes, $($f:ident),*) => {{
        let v = <$t as Default>::default();
        let q = &v as *const $t;
        // SAFETY: q points to an initialized $t.
        Some(vec![$(unsafe { $crate::ctype::field_bytes(core::ptr::addr_of!((*q).$f)) }),*])
    }};
    (@init $t:ident, no, $($f:ident),*) => { None };
    (@impl $t:ident, $root:expr, $path:expr, $init:ident,
     { $($f:ident $(= $c:literal)? $(@ $anon:ident)?),* }) => {
        impl $crate::ctype::HasLayout for $t {
            fn layout() -> $crate::ctype::StructLayout {
                let u = core::mem::MaybeUninit::<$t>::uninit();
                let p = u.as_ptr();
                $crate::ctype::StructLayout {
                    rust_name: stringify!($t),
                    c_root: $root,
                    c_path: $path,
                    size: core::mem::size_of::<$t>(),
                    align: core::mem::align_of::<$t>(),
                    // SAFETY: only field addresses of the uninitialized value are taken.
                    fields: vec![$(unsafe { $crate::ctype::field_layout(layout!(@name $f $($c)?),
                        p as *const u8, core::ptr::addr_of!((*p).$f), layout!(@chk $($anon)?)) }),*],
                    init: layout!(@init $t, $init, $($f),*),
                }
            }
        }
    };
    (@complete $t:ident, $($f:ident),*) => {
        const _: () = {
            #[allow(dead_code)]
            fn every_field_is_listed(v: $t) {
                let $t { $($f: _),* } = v;
            }
        };
    };
    (struct $t:ident init { $($f:ident $(= $c:literal)? $(@ $anon:ident)?),* $(,)? }) => {
        layout!(@impl $t, stringify!($t), "", yes, { $($f $(= $c)? $(@ $anon)?),* });
        layout!(@complete $t, $($f),*);
    };
    (struct $t:ident { $($f:ident $(= $c:literal)? $(@ $anon:ident)?),* $(,)? }) => {
        layout!(@impl $t, stringify!($t), "", no, { $($f $(= $c)? $(@ $anon)?),* });
        layout!(@complete $t, $($f),*);
    };
    (anon $t:ident in $root:literal . $path:literal { $($f:ident $(= $c:literal)?),* $(,)? }) => {
        layout!(@impl $t, $root, $path, no, { $($f $(= $c)?),* });
        layout!(@complete $t, $($f),*);
    };
    (union $t:ident in $root:literal . $path:literal { $($f:ident),* $(,)? }) => {
        layout!(@impl $t, $root, $path, no, { $($f @anon),* });
    };
}

#[doc(hidden)]
pub mod ctype;

mod boot;
mod core_;
mod devices;
mod mem;
mod snapshot;
mod vcpu;
mod virtio;

pub use boot::*;
pub use core_::*;
pub use devices::*;
pub use mem::*;
pub use snapshot::*;
pub use vcpu::*;
pub use virtio::*;

/// Everything declared here, for tests/layout.rs.
#[doc(hidden)]
pub mod inventory {
    use crate::ctype::{HasLayout, StructLayout};
    use crate::*;

    /// (name, C declaration) of every function.
    pub fn functions() -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        v.extend(crate::core_::c_fn_decls());
        v.extend(crate::mem::c_fn_decls());
        v.extend(crate::vcpu::c_fn_decls());
        v.extend(crate::boot::c_fn_decls());
        v.extend(crate::virtio::c_fn_decls());
        v.extend(crate::devices::c_fn_decls());
        v.extend(crate::snapshot::c_fn_decls());
        // Variadic: spelled by hand.
        v.push((
            "vmm_cmdline_addf",
            "int vmm_cmdline_addf(vmm_cmdline *, const char *, const char *, ...)".to_string(),
        ));
        v
    }

    /// (name, value) of every #define constant and enumerator.
    pub fn constants() -> Vec<(&'static str, i128)> {
        let mut v = Vec::new();
        v.extend(crate::core_::c_const_values());
        v.extend(crate::mem::c_const_values());
        v.extend(crate::vcpu::c_const_values());
        v.extend(crate::boot::c_const_values());
        v.extend(crate::virtio::c_const_values());
        v.extend(crate::devices::c_const_values());
        v.extend(crate::snapshot::c_const_values());
        for e in [
            vmm_irqchip_mode::c_values(),
            vmm_mem_backing::c_values(),
            vmm_bus_space::c_values(),
            vmm_cpuid_reg::c_values(),
            vmm_exit_reason::c_values(),
            vmm_linux_protocol::c_values(),
            vmm_console_backend::c_values(),
            vmm_net_backend::c_values(),
            vmm_uart_backend::c_values(),
            vmm_snapshot_mem_mode::c_values(),
        ] {
            v.extend(e);
        }
        v.extend(crate::snapshot::c_enum_values());
        v
    }

    /// The layout of every struct and union.
    pub fn structs() -> Vec<StructLayout> {
        let mut v = vec![
            vmm_vm_opts::layout(),
            vmm_mem_region_opts::layout(),
            vmm_mem_region_info::layout(),
            vmm_bus_ops::layout(),
            vmm_cpuid_entry::layout(),
            vmm_regs::layout(),
            vmm_segment::layout(),
            vmm_dtable::layout(),
            vmm_sregs::layout(),
            vmm_fpu::layout(),
            vmm_vcpu_opts::layout(),
            vmm_long_mode_opts::layout(),
            vmm_exit::layout(),
            vmm_exit_u::layout(),
            vmm_exit_guest::layout(),
            vmm_exit_fault::layout(),
            vmm_exit_io::layout(),
            vmm_exit_system::layout(),
            vmm_exit_internal::layout(),
            vmm_elf_info::layout(),
            vmm_acpi_virtio_mmio::layout(),
            vmm_acpi_opts::layout(),
            vmm_acpi_table_info::layout(),
            vmm_acpi_info::layout(),
            vmm_fdt_range::layout(),
            vmm_fdt_virtio_mmio::layout(),
            vmm_fdt_opts::layout(),
            vmm_e820_entry::layout(),
            vmm_linux_setup_data::layout(),
            vmm_linux_opts::layout(),
            vmm_linux_info::layout(),
            vmm_linux_kernel::layout(),
            vmm_virtio_mmio_opts::layout(),
            vmm_virtio_mmio_stats::layout(),
            vmm_virtio_device_ops::layout(),
            vmm_virtq_seg::layout(),
            vmm_virtq_chain::layout(),
            vmm_virtio_console_opts::layout(),
            vmm_virtio_blk_opts::layout(),
            vmm_virtio_blk_stats::layout(),
            vmm_virtio_net_opts::layout(),
            vmm_virtio_net_stats::layout(),
            vmm_virtio_vsock_opts::layout(),
            vmm_virtio_rng_opts::layout(),
            vmm_virtio_balloon_opts::layout(),
            vmm_virtio_balloon_stats::layout(),
            vmm_uart_opts::layout(),
            vmm_i8042_opts::layout(),
            vmm_rtc_opts::layout(),
            vmm_power_opts::layout(),
        ];
        v.extend(crate::snapshot::c_layouts());
        v
    }
}
