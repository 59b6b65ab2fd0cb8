//! nftables transactions through libnftables, the library behind the `nft` command, loaded
//! at run time and kept with one context for the life of the process.
//!
//! Running `nft -f -` for a transaction costs 16–32 ms on a small host (measured: p50 20 ms):
//! starting the program, and above all closing its netlink socket, which waits for an RCU
//! grace period in the kernel. A group's delete paid it once, its admission once more. Through
//! one long-lived context the same transaction costs 0.2–0.3 ms. The library is loaded
//! rather than linked because it comes with the `nft` program (Debian's `libnftables1`, a
//! dependency of `nftables`) while its link-time files do not; when it cannot be loaded the
//! program is run as before. No crate wraps libnftables (the `nftables` crate runs the
//! program; the netlink crates cannot express berth's concatenated set elements), so the five
//! functions used are declared here.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The file name the library is loaded by (its ABI version 1, as Debian ships it).
const LIBRARY: &str = "libnftables.so.1";

type CtxNew = unsafe extern "C" fn(c_uint) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxBuffer = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxGetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// One libnftables context with the functions it is used through.
struct Context {
    ctx: *mut c_void,
    run: RunCmd,
    errors: CtxGetBuffer,
    output: CtxGetBuffer,
    free: CtxFree,
    /// Kept loaded as long as the context lives.
    _lib: libloading::Library,
}

// SAFETY: a context is used by one thread at a time (it lives behind a mutex); libnftables
// keeps no thread-local state.
unsafe impl Send for Context {}

impl Context {
    fn load() -> Result<Self, String> {
        // SAFETY: loading libnftables runs no initialisers with preconditions, and every symbol
        // is given the signature its header (nftables/libnftables.h) declares.
        unsafe {
            let lib = libloading::Library::new(LIBRARY).map_err(|e| e.to_string())?;
            let new: CtxNew = *lib.get(b"nft_ctx_new\0").map_err(|e| e.to_string())?;
            let free: CtxFree = *lib.get(b"nft_ctx_free\0").map_err(|e| e.to_string())?;
            let buffer_output: CtxBuffer = *lib
                .get(b"nft_ctx_buffer_output\0")
                .map_err(|e| e.to_string())?;
            let buffer_error: CtxBuffer = *lib
                .get(b"nft_ctx_buffer_error\0")
                .map_err(|e| e.to_string())?;
            let output: CtxGetBuffer = *lib
                .get(b"nft_ctx_get_output_buffer\0")
                .map_err(|e| e.to_string())?;
            let errors: CtxGetBuffer = *lib
                .get(b"nft_ctx_get_error_buffer\0")
                .map_err(|e| e.to_string())?;
            let run: RunCmd = *lib
                .get(b"nft_run_cmd_from_buffer\0")
                .map_err(|e| e.to_string())?;
            // NFT_CTX_DEFAULT
            let ctx = new(0);
            if ctx.is_null() {
                return Err("nft_ctx_new failed".to_owned());
            }
            if buffer_output(ctx) != 0 || buffer_error(ctx) != 0 {
                free(ctx);
                return Err("cannot buffer the output of libnftables".to_owned());
            }
            Ok(Self {
                ctx,
                run,
                errors,
                output,
                free,
                _lib: lib,
            })
        }
    }

    /// Runs `script` as one transaction; the error text of libnftables when it fails.
    fn run(&mut self, script: &CStr) -> Result<(), String> {
        // SAFETY: `ctx` is a live context used by this thread only; the buffers returned are
        // NUL-terminated strings owned by the context, read before the next call into it.
        unsafe {
            let rc = (self.run)(self.ctx, script.as_ptr());
            // Read both buffers every time, so neither grows across transactions.
            let _ = (self.output)(self.ctx);
            let err = (self.errors)(self.ctx);
            if rc == 0 {
                return Ok(());
            }
            let text = if err.is_null() {
                String::new()
            } else {
                CStr::from_ptr(err).to_string_lossy().trim().to_owned()
            };
            Err(if text.is_empty() {
                format!("libnftables failed ({rc})")
            } else {
                text
            })
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was made by nft_ctx_new and is not used after this.
        unsafe { (self.free)(self.ctx) }
    }
}

/// The process's context; `None` when the library cannot be loaded.
fn context() -> Option<&'static Mutex<Context>> {
    static CONTEXT: OnceLock<Option<Mutex<Context>>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| match Context::load() {
            Ok(c) => Some(Mutex::new(c)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot load {LIBRARY}; running nft for each change of the isolation tables");
                None
            }
        })
        .as_ref()
}

/// Runs `script` as one nftables transaction: through libnftables when it loads, else with
/// the `nft` program. The error is what nftables said.
pub(crate) fn transaction(script: &str) -> Result<(), String> {
    if script.is_empty() {
        return Ok(());
    }
    match context() {
        Some(ctx) => {
            let text = CString::new(script).map_err(|_| "the script holds a NUL byte")?;
            ctx.lock().unwrap_or_else(|p| p.into_inner()).run(&text)
        }
        None => program(script),
    }
}

/// The same with `nft -f -`.
fn program(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("nft did not finish: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root and nftables, as berth does (CI runs as root).
    #[test]
    fn transactions_apply_and_errors_carry_the_message() {
        let table = format!("berth_nft_test_{}", std::process::id());
        transaction(&format!(
            "table bridge {table} {{\n set ports {{ type ifname; }}\n}}\n"
        ))
        .unwrap();
        transaction(&format!(
            "add element bridge {table} ports {{ \"veth-x\" }}\n"
        ))
        .unwrap();
        transaction(&format!(
            "delete element bridge {table} ports {{ \"veth-x\" }}\n"
        ))
        .unwrap();
        // Deleting what is not there fails, with nftables' own words.
        let err = transaction(&format!(
            "delete element bridge {table} ports {{ \"veth-x\" }}\n"
        ))
        .unwrap_err();
        assert!(!err.is_empty());
        // The context is still usable after a failed transaction, and the same answer comes
        // from the program.
        let err2 = program(&format!(
            "delete element bridge {table} ports {{ \"veth-x\" }}\n"
        ))
        .unwrap_err();
        assert!(!err2.is_empty());
        transaction(&format!("delete table bridge {table}\n")).unwrap();
        assert!(context().is_some(), "libnftables did not load");
    }
}
