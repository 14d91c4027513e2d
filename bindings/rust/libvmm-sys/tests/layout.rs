//! The declarations of this crate against the C headers, so they cannot drift apart.
//!
//! 1. A C program including the real headers redeclares every function with the
//!    signature spelled from the Rust declaration: a mismatch (a parameter type, a
//!    missing const, a return type) is a C compile error ("conflicting types").
//! 2. The same program prints sizeof, _Alignof and offsetof of every struct and field,
//!    whether each field's C type is compatible with the Rust field's type, every
//!    constant and enumerator, and the bytes of every _INIT macro; the test compares
//!    them with the Rust side (size_of, align_of, addr_of! offsets, Default values).
//! 3. The headers are scanned for every function, struct, enumerator, #define constant
//!    and _INIT macro: each must be declared on the Rust side, and nothing more.
//!
//! Headers: $LIBVMM_INCLUDE_DIR, default <repo>/include. Compiler: $CC, default cc.
use libvmm_sys::inventory;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn include_dir() -> PathBuf {
    match std::env::var_os("LIBVMM_INCLUDE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../include"),
    }
}

fn c_program() -> String {
    let mut c = String::new();
    c.push_str(
        "#include <stddef.h>\n#include <stdio.h>\n#include <libvmm/libvmm.h>\n\
         #include <libvmm/sys/device.h>\n#include <libvmm/sys/virtq.h>\n\n\
         /* Every function, as the Rust side declares it. */\n",
    );
    for (_, decl) in inventory::functions() {
        writeln!(c, "{};", decl).unwrap();
    }
    c.push_str(
        "\nstatic void dump(const char *s, const char *f, const void *p, size_t n)\n{\n\
         \tconst unsigned char *b = p;\n\tprintf(\"init %s.%s \", s, f);\n\
         \tfor (size_t i = 0; i < n; i++)\n\t\tprintf(\"%02x\", b[i]);\n\tprintf(\"\\n\");\n}\n\n\
         int main(void)\n{\n",
    );
    for s in inventory::structs() {
        let (root, path) = (s.c_root, s.c_path);
        let name = s.rust_name;
        if path.is_empty() {
            writeln!(c, "\tprintf(\"size {} %zu\\n\", sizeof({}));", name, root).unwrap();
            writeln!(c, "\tprintf(\"align {} %zu\\n\", _Alignof({}));", name, root).unwrap();
        } else {
            writeln!(c, "\tprintf(\"size {} %zu\\n\", sizeof((({}*)0)->{}));", name, root, path).unwrap();
            writeln!(c, "\tprintf(\"align {} %zu\\n\", _Alignof(__typeof__((({}*)0)->{})));", name, root, path)
                .unwrap();
        }
        for f in &s.fields {
            let member = if path.is_empty() { f.name.to_string() } else { format!("{}.{}", path, f.name) };
            let off = if path.is_empty() {
                format!("offsetof({}, {})", root, f.name)
            } else {
                format!("(offsetof({r}, {m}) - offsetof({r}, {p}))", r = root, m = member, p = path)
            };
            writeln!(c, "\tprintf(\"offset {}.{} %zu\\n\", (size_t){});", name, f.name, off).unwrap();
            writeln!(c, "\tprintf(\"fsize {}.{} %zu\\n\", sizeof((({}*)0)->{}));", name, f.name, root, member)
                .unwrap();
            if let Some(t) = &f.c_type {
                writeln!(
                    c,
                    "\tprintf(\"type {}.{} %d\\n\", __builtin_types_compatible_p(__typeof__((({}*)0)->{}), {}));",
                    name, f.name, root, member, t
                )
                .unwrap();
            }
        }
        if s.init.is_some() {
            writeln!(c, "\t{{\n\t\t{} v = {}_INIT;", root, root.to_uppercase()).unwrap();
            for f in &s.fields {
                writeln!(c, "\t\tdump(\"{}\", \"{}\", &v.{}, sizeof v.{});", name, f.name, f.name, f.name).unwrap();
            }
            c.push_str("\t}\n");
        }
    }
    for (name, _) in inventory::constants() {
        writeln!(c, "\tprintf(\"const {} %lld\\n\", (long long)({}));", name, name).unwrap();
    }
    c.push_str("\treturn 0;\n}\n");
    c
}

/// Compiles and runs the program; returns its output as "kind name" -> value.
fn run_c_program() -> BTreeMap<String, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("libvmm_layout.c");
    let bin = dir.join("libvmm_layout");
    fs::write(&src, c_program()).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{}`: {}", cc, e));
    assert!(
        out.status.success(),
        "the C check program ({}) does not compile against the headers in {}: a Rust \
         declaration differs from its header.\n{}",
        src.display(),
        include_dir().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut it = line.splitn(3, ' ');
        let (kind, name, value) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        map.insert(format!("{} {}", kind, name), value.to_string());
    }
    map
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

#[test]
fn layouts_constants_and_signatures_match_the_headers() {
    let c = run_c_program();
    let get = |k: String| c.get(&k).unwrap_or_else(|| panic!("C program printed no `{}`", k)).clone();
    let mut errors = Vec::new();
    let mut checked = 0;
    for s in inventory::structs() {
        let n = s.rust_name;
        let mut check = |what: String, rust: String| {
            checked += 1;
            let cv = get(what.clone());
            if cv != rust {
                errors.push(format!("{}: C {} != Rust {}", what, cv, rust));
            }
        };
        check(format!("size {}", n), s.size.to_string());
        check(format!("align {}", n), s.align.to_string());
        for f in &s.fields {
            check(format!("offset {}.{}", n, f.name), f.offset.to_string());
            check(format!("fsize {}.{}", n, f.name), f.size.to_string());
            if f.c_type.is_some() {
                check(format!("type {}.{}", n, f.name), "1".to_string());
            }
        }
        if let Some(init) = &s.init {
            for (f, bytes) in s.fields.iter().zip(init) {
                check(format!("init {}.{}", n, f.name), hex(bytes));
            }
        }
    }
    for (name, value) in inventory::constants() {
        checked += 1;
        let cv: i128 = get(format!("const {}", name)).parse().unwrap();
        if cv != value {
            errors.push(format!("{}: C {} != Rust {}", name, cv, value));
        }
    }
    assert!(errors.is_empty(), "{} mismatches:\n{}", errors.len(), errors.join("\n"));
    assert!(checked > 500, "only {} checks", checked);
}

/// The headers with comments removed.
fn header_texts() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for sub in ["libvmm", "libvmm/sys"] {
        let dir = include_dir().join(sub);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {}", dir.display(), e)) {
            let p = e.unwrap().path();
            if p.extension().map(|x| x == "h").unwrap_or(false) {
                files.push((p.display().to_string(), strip_comments(&fs::read_to_string(&p).unwrap())));
            }
        }
    }
    files.sort();
    files
}

fn strip_comments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(end) => {
                    // Keep line structure for the #define scan.
                    out.extend(s[i..i + 2 + end + 2].chars().filter(|&ch| ch == '\n'));
                    i += 2 + end + 2;
                }
                None => break,
            }
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_before(s: &str, end: usize) -> &str {
    let b = s.as_bytes();
    let mut e = end;
    while e > 0 && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    let mut st = e;
    while st > 0 && is_ident_byte(b[st - 1]) {
        st -= 1;
    }
    &s[st..e]
}

fn ident_at(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.bytes().position(|c| !is_ident_byte(c)).unwrap_or(s.len());
    &s[..end]
}

#[derive(Default)]
struct HeaderNames {
    functions: BTreeSet<String>,
    structs: BTreeSet<String>,
    constants: BTreeSet<String>,
    inits: BTreeSet<String>,
}

fn scan_headers() -> HeaderNames {
    let mut h = HeaderNames::default();
    for (_file, text) in header_texts() {
        let mut code = String::new();
        for line in text.lines() {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("#define") {
                let name = ident_at(rest);
                let after = &rest.trim_start()[name.len()..];
                let function_like = after.starts_with('(');
                let value = after.trim();
                if name == "VMM_API" || function_like || value.is_empty() {
                    continue;
                }
                if let Some(s) = name.strip_suffix("_INIT") {
                    h.inits.insert(s.to_lowercase());
                } else if name.starts_with("VMM_") || name.starts_with("LIBVMM_") {
                    h.constants.insert(name.to_string());
                }
            } else if !t.starts_with('#') {
                code.push_str(line);
                code.push('\n');
            }
        }
        let mut from = 0;
        while let Some(i) = code[from..].find("VMM_API") {
            let at = from + i;
            let paren = at + code[at..].find('(').unwrap();
            h.functions.insert(ident_before(&code, paren).to_string());
            from = paren;
        }
        for kw in ["typedef struct ", "typedef enum "] {
            let mut from = 0;
            while let Some(i) = code[from..].find(kw) {
                let at = from + i + kw.len();
                let name = ident_at(&code[at..]);
                let rest = code[at..].trim_start()[name.len()..].trim_start();
                if rest.starts_with('{') {
                    if kw == "typedef struct " {
                        h.structs.insert(name.to_string());
                    } else {
                        let open = at + code[at..].find('{').unwrap();
                        let close = open + code[open..].find('}').unwrap();
                        for e in code[open + 1..close].split(',') {
                            let e = ident_at(e);
                            if !e.is_empty() {
                                h.constants.insert(e.to_string());
                            }
                        }
                    }
                }
                from = at;
            }
        }
    }
    h
}

fn compare(what: &str, header: &BTreeSet<String>, rust: &BTreeSet<String>, errors: &mut Vec<String>) {
    for n in header.difference(rust) {
        errors.push(format!("{} `{}` is in the headers but not declared in libvmm-sys", what, n));
    }
    for n in rust.difference(header) {
        errors.push(format!("{} `{}` is declared in libvmm-sys but not in the headers", what, n));
    }
}

#[test]
fn every_header_item_is_declared() {
    let h = scan_headers();
    assert!(h.functions.len() > 150 && h.structs.len() > 40 && h.constants.len() > 100);
    let fns: BTreeSet<String> = inventory::functions().into_iter().map(|(n, _)| n.to_string()).collect();
    let consts: BTreeSet<String> = inventory::constants().into_iter().map(|(n, _)| n.to_string()).collect();
    let layouts = inventory::structs();
    let structs: BTreeSet<String> =
        layouts.iter().filter(|s| s.c_path.is_empty()).map(|s| s.rust_name.to_string()).collect();
    let inits: BTreeSet<String> =
        layouts.iter().filter(|s| s.init.is_some()).map(|s| s.rust_name.to_string()).collect();
    let mut errors = Vec::new();
    compare("function", &h.functions, &fns, &mut errors);
    compare("struct", &h.structs, &structs, &mut errors);
    compare("constant", &h.constants, &consts, &mut errors);
    compare("_INIT macro of struct", &h.inits, &inits, &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn c_spellings() {
    use libvmm_sys::ctype::CType;
    use std::os::raw::{c_char, c_int, c_void};
    assert_eq!(<*const *mut c_char>::c_decl("p", ""), "char (*const (* p))");
    assert_eq!(<[[u8; 16]; 8]>::c_decl("", ""), "uint8_t [8][16]");
    type F = Option<unsafe extern "C" fn(*mut c_void, u64) -> c_int>;
    assert_eq!(F::c_decl("f", ""), "int (* f)(void (* ), uint64_t)");
}
