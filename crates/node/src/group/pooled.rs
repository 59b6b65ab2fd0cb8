//! A gvisor group taking a sandbox from the node's pool (`crate::gvisor_pool`) before its
//! network is attached: the namespace the sandbox runs in becomes the group's
//! (`Network::hand_over`), the sandbox's cgroup becomes `/berth/<group>` with the group's
//! memory limit (its CPU quota follows in `shared`, as for a sandbox the group booted), and
//! the sandbox gets the group's host name. Every step can be repeated, so a group whose
//! take-over a crash of berth cut short finishes it when it resumes. A take-over that fails
//! removes the sandbox; the group then boots one of its own.

use berth_core::{GroupSpec, RuntimeClass};

use crate::files::{error_chain, GroupDirs};
use crate::gvisor_pool::{claimed_by, forget_claim, remove_sandbox, runsc_id};
use crate::host::Host;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Gives a gvisor group a pooled sandbox: the one it recorded (finishing its take-over), else
/// one taken from the pool on a first start. Does nothing for another class, without a pool,
/// or with the pool empty.
pub async fn take(host: &Host, gid: &str, dirs: &GroupDirs, spec: &GroupSpec, first: bool) {
    if spec.runtime_class() != RuntimeClass::Gvisor {
        return;
    }
    let Some(pool) = &host.sandbox_pool else {
        return;
    };
    let id = match claimed_by(dirs) {
        Some(id) => id,
        // A group that ran before has a sandbox of its own, or had one.
        None if first && !dirs.root.join("sandbox").exists() => {
            match pool.take(host, gid, dirs).await {
                Some(id) => id,
                None => return,
            }
        }
        None => return,
    };
    let began = std::time::Instant::now();
    match hand_over(host, gid, &id, &pool.dir_of(&id), spec).await {
        Ok(()) => tracing::debug!(
            group = %gid,
            pooled = %id,
            elapsed_us = began.elapsed().as_micros() as u64,
            "pooled gVisor sandbox handed over"
        ),
        Err(e) => {
            tracing::warn!(group = %gid, pooled = %id, error = %e, "cannot take over a pooled sandbox; the group boots its own");
            release(host, dirs, &id, pool.dir_of(&id)).await;
        }
    }
}

/// Moves the sandbox `id` (files in `dir`) to group `gid`: namespace, cgroup, memory limit,
/// host name (told to its pause process, see `Runtime::set_sandbox_hostname`).
async fn hand_over(
    host: &Host,
    gid: &str,
    id: &str,
    dir: &std::path::Path,
    spec: &GroupSpec,
) -> Result<(), String> {
    let rt = host
        .runtime_for(RuntimeClass::Gvisor)
        .map_err(|e| e.to_string())?;
    let began = std::time::Instant::now();
    host.net
        .hand_over(id, gid)
        .map_err(|e| format!("cannot hand over its namespace: {}", error_chain(&e)))?;
    let net = began.elapsed();
    let to = berth_runtime::cgroup::group_cgroup_path(gid);
    let rid = runsc_id(id);
    rt.move_sandbox_cgroup(&rid, &berth_runtime::cgroup::group_cgroup_path(id), &to)
        .await
        .map_err(|e| format!("cannot move its cgroup: {}", error_chain(&e)))?;
    rt.config()
        .layout
        .set_memory_limit(&to, (spec.memory * GIB) as u64)
        .map_err(|e| format!("cannot limit its memory: {}", error_chain(&e)))?;
    let cgroup = began.elapsed();
    let hostname = spec.host_name.as_deref().unwrap_or(&spec.name);
    rt.set_sandbox_hostname(dir, hostname)
        .await
        .map_err(|e| format!("cannot set its host name: {}", error_chain(&e)))?;
    tracing::debug!(
        group = %gid,
        net_us = net.as_micros() as u64,
        cgroup_us = (cgroup - net).as_micros() as u64,
        hostname_us = (began.elapsed() - cgroup).as_micros() as u64,
        "pooled sandbox's steps"
    );
    Ok(())
}

/// Removes the group's pooled sandbox `id` (files in `dir`) and forgets it: it failed or
/// died, or the group goes.
pub async fn release(host: &Host, dirs: &GroupDirs, id: &str, dir: std::path::PathBuf) {
    remove_sandbox(host, id, &dir).await;
    forget_claim(dirs);
}
