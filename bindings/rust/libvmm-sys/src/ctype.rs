//! Machinery that lets a test compare these declarations with the C headers.
//!
//! Every Rust type used in a declaration knows how to spell itself in C (`CType`), every
//! struct knows its size, alignment, field offsets and the C type of each field
//! (`HasLayout`), and every module lists its functions (as C declarations) and its
//! constants. `tests/layout.rs` turns all of that into a C program that includes the real
//! headers: a function whose Rust signature differs from the header makes that program
//! fail to compile ("conflicting types"), and the program prints sizes, offsets, type
//! compatibility and constant values for the test to compare. Not part of the API.
#![doc(hidden)]

use std::mem::size_of;
use std::os::raw::c_void;

/// A Rust type that has a C spelling.
pub trait CType {
    /// A C declaration of `name` with this type; `qual` qualifies the type itself
    /// ("const" or ""). With an empty name: a C type name.
    fn c_decl(name: &str, qual: &str) -> String;
}

/// `base qual name`, skipping empty parts.
pub fn named(base: &str, qual: &str, name: &str) -> String {
    let mut s = String::from(base);
    for part in [qual, name] {
        if !part.is_empty() {
            s.push(' ');
            s.push_str(part);
        }
    }
    s
}

macro_rules! c_base_type {
    ($($t:ty => $c:expr),* $(,)?) => {
        $(impl CType for $t {
            fn c_decl(name: &str, qual: &str) -> String {
                named($c, qual, name)
            }
        })*
    };
}

// On x86_64 Linux: int32_t is int, uint64_t and size_t are unsigned long, int64_t is
// long, so these spellings are compatible with whatever the headers use. c_char is i8.
c_base_type! {
    u8 => "uint8_t", u16 => "uint16_t", u32 => "uint32_t", u64 => "uint64_t",
    i8 => "char", i16 => "int16_t", i32 => "int", i64 => "int64_t",
    usize => "size_t", bool => "bool", c_void => "void", () => "void",
}

impl<T: CType> CType for *mut T {
    fn c_decl(name: &str, qual: &str) -> String {
        T::c_decl(&format!("(*{} {})", qual, name), "")
    }
}

impl<T: CType> CType for *const T {
    fn c_decl(name: &str, qual: &str) -> String {
        T::c_decl(&format!("(*{} {})", qual, name), "const")
    }
}

impl<T: CType, const N: usize> CType for [T; N] {
    fn c_decl(name: &str, qual: &str) -> String {
        T::c_decl(&format!("{}[{}]", name, N), qual)
    }
}

macro_rules! c_fn_pointer {
    ($($a:ident),*) => {
        impl<R: CType $(, $a: CType)*> CType for Option<unsafe extern "C" fn($($a),*) -> R> {
            fn c_decl(name: &str, qual: &str) -> String {
                let args: Vec<String> = vec![$($a::c_decl("", "")),*];
                let args = if args.is_empty() { "void".to_string() } else { args.join(", ") };
                R::c_decl(&format!("(*{} {})({})", qual, name, args), "")
            }
        }
    };
}
c_fn_pointer!();
c_fn_pointer!(A);
c_fn_pointer!(A, B);
c_fn_pointer!(A, B, C);
c_fn_pointer!(A, B, C, D);
c_fn_pointer!(A, B, C, D, E);
c_fn_pointer!(A, B, C, D, E, F);

/// The C declaration of function `name` returning R with the given argument types.
pub fn fn_decl<R: CType>(name: &str, args: &[String]) -> String {
    let args = if args.is_empty() { "void".to_string() } else { args.join(", ") };
    R::c_decl(&format!("{}({})", name, args), "")
}

/// One field of a struct, as the Rust side lays it out.
#[derive(Debug, Clone)]
pub struct FieldLayout {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    /// The C type name to check the field against; None for fields whose C type is an
    /// anonymous struct or union.
    pub c_type: Option<String>,
}

/// A struct or union, as the Rust side lays it out.
#[derive(Debug, Clone)]
pub struct StructLayout {
    pub rust_name: &'static str,
    /// The C type that holds it, and the member path inside that type ("" for a named
    /// C type; e.g. "u.fault" for the anonymous struct of vmm_exit's union).
    pub c_root: &'static str,
    pub c_path: &'static str,
    pub size: usize,
    pub align: usize,
    pub fields: Vec<FieldLayout>,
    /// The bytes of each field of `Default::default()`, for structs whose header has an
    /// _INIT macro (compared with the macro's value).
    pub init: Option<Vec<Vec<u8>>>,
}

pub trait HasLayout {
    fn layout() -> StructLayout;
}

/// # Safety
/// `field` must point into the object that starts at `base`.
pub unsafe fn field_layout<F: CType>(
    name: &'static str,
    base: *const u8,
    field: *const F,
    check_type: bool,
) -> FieldLayout {
    FieldLayout {
        name,
        offset: field as usize - base as usize,
        size: size_of::<F>(),
        c_type: if check_type { Some(F::c_decl("", "")) } else { None },
    }
}

/// # Safety
/// `field` must point to an initialized field.
pub unsafe fn field_bytes<F>(field: *const F) -> Vec<u8> {
    std::slice::from_raw_parts(field as *const u8, size_of::<F>()).to_vec()
}

/// A constant's value, whatever its Rust type.
pub trait ConstValue {
    fn value(&self) -> i128;
}

macro_rules! const_value {
    ($($t:ty),*) => { $(impl ConstValue for $t { fn value(&self) -> i128 { *self as i128 } })* };
}
const_value!(u8, u16, u32, u64, i32, i64, usize);
