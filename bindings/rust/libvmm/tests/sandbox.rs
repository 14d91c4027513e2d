//! Function sandboxes: calls, buffers, host functions, reset, errors, panics.
mod common;
use common::*;
use libvmm::{errno, Sandbox};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn make(output: Arc<Mutex<Vec<u8>>>) -> Sandbox {
    Sandbox::builder()
        .elf_path(sandbox_guest("sbx_basic"))
        .host_fn(1, None, |_, args| Ok(args[0] + 1))
        .host_fn(7, Some("times_two"), |_, args| Ok(args[0] * 2))
        .host_fn(2, Some("read_buf"), |call, args| {
            let bytes = call.read_vec(args[0], args[1] as usize).map_err(|e| e.errno())?;
            if bytes == b"boom" {
                panic!("host function panic");
            }
            Ok(bytes.iter().take_while(|&&b| b != 0).count() as u64)
        })
        .host_fn(3, Some("fail"), |_, _| Err(errno::EIO))
        .output(move |b| output.lock().unwrap().extend_from_slice(b))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn calls_buffers_host_functions_and_reset() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut sb = make(out.clone());
    assert_eq!(String::from_utf8(out.lock().unwrap().clone()).unwrap(), "init done\n");
    assert_eq!(sb.call("add", &[2, 3]).unwrap(), 5);
    assert_eq!(sb.call("sum6", &[1, 1, 1, 1, 1, 1]).unwrap(), 21);
    assert_eq!(sb.call("get_init_value", &[]).unwrap(), 42);
    // Every call starts from the snapshot.
    for _ in 0..5 {
        assert_eq!(sb.call("bump", &[]).unwrap(), 1);
    }
    // Buffers.
    let mut rev = [0u8; 16];
    let r = sb.call_with("checksum", &[], &[b"abc"], &mut [&mut rev[..]], None).unwrap();
    assert_eq!(r.ret, 97 + 98 + 99);
    assert_eq!(r.out_lens[0], 3);
    assert_eq!(&rev[..3], b"cba");
    let (mut count, mut cat) = ([0u8; 8], [0u8; 64]);
    let r = sb.call_with("concat", &[], &[b"one ", b"two ", b"three"], &mut [&mut count[..], &mut cat[..]], None)
        .unwrap();
    assert_eq!((r.ret, r.n_out, r.out_lens[1]), (3, 2, 13));
    assert_eq!(u64::from_le_bytes(count), 3);
    assert_eq!(&cat[..13], b"one two three");
    // Host functions by id and by name: (x + 1) * 2.
    assert_eq!(sb.call("call_host", &[20]).unwrap(), 42);
    // A host function reading guest memory through the checked accessor.
    assert_eq!(sb.call("host_reads", &[0, 10]).unwrap(), 10);
    // Guest output.
    out.lock().unwrap().clear();
    sb.call("print", &[]).unwrap();
    assert_eq!(&out.lock().unwrap()[..], b"hello from the guest");
    let st = sb.stats().unwrap();
    assert!(st.calls >= 10 && st.host_calls >= 3, "{:?}", st);
    assert!(sb.symbol("add").unwrap() >= 0x10_0000);
}

#[test]
fn errors_leave_the_sandbox_usable() {
    let mut sb = make(Arc::new(Mutex::new(Vec::new())));
    let e = sb.call("crash_null", &[]).unwrap_err();
    assert_eq!(e.errno(), errno::EFAULT);
    assert!(e.message().contains("14") || e.message().to_lowercase().contains("page"), "{}", e);
    assert_eq!(sb.call("crash_ud2", &[]).unwrap_err().errno(), errno::EFAULT);
    assert_eq!(sb.call("no_such_function", &[]).unwrap_err().errno(), errno::ENOENT);
    assert_eq!(sb.call("call_failing_host", &[]).unwrap_err().errno(), errno::EIO);
    assert_eq!(sb.call("call_unknown_host", &[]).unwrap_err().errno(), errno::ENOSYS);
    let e = sb.call("give_up", &[]).unwrap_err();
    assert_eq!(e.errno(), errno::ECANCELED);
    assert!(e.message().contains("giving up on purpose"), "{}", e);
    let e = sb.call_with("spin", &[], &[], &mut [], Some(Duration::from_millis(100))).unwrap_err();
    assert_eq!(e.errno(), errno::ETIMEDOUT);
    assert_eq!(sb.call("add", &[1, 2, 3, 4, 5, 6, 7]).unwrap_err().errno(), errno::EINVAL);
    // Still fine, and back at the snapshot.
    assert_eq!(sb.call("add", &[40, 2]).unwrap(), 42);
    assert_eq!(sb.call("bump", &[]).unwrap(), 1);
}

#[test]
fn a_panicking_host_function_resumes_from_call() {
    let mut sb = Sandbox::builder()
        .elf_path(sandbox_guest("sbx_basic"))
        .host_fn(2, Some("read_buf"), |call, args| {
            let b = call.read_vec(args[0], args[1] as usize).map_err(|e| e.errno())?;
            if args[1] == 7 {
                panic!("host function panic");
            }
            Ok(b.len() as u64)
        })
        .build()
        .unwrap();
    // host_reads(0, n): the guest passes its "hello host" buffer to read_buf.
    assert_eq!(sb.call("host_reads", &[0, 10]).unwrap(), 10);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sb.call("host_reads", &[0, 7])));
    let p = r.expect_err("the call should panic");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"host function panic"));
    // Usable afterwards.
    assert_eq!(sb.call("add", &[1, 1]).unwrap(), 2);
    assert_eq!(sb.call("host_reads", &[0, 5]).unwrap(), 5);
    // Bad guest pointers in a host function come back as the call's error.
    let e = sb.call("host_reads", &[1 << 40, 4]).unwrap_err();
    assert_eq!(e.errno(), errno::EFAULT);
    let st = sb.stats().unwrap();
    assert!(st.errors >= 2, "{:?}", st);
}
