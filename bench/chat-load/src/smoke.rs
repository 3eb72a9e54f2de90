//! The CI smoke test's workload: a short fan-out that must lose nothing.

use crate::Common;
use crate::fanout::fanout;

/// The CI smoke: works end to end and loses nothing.
pub async fn smoke(common: &Common) -> Result<(), String> {
    let common = Common {
        no_reference: true,
        ..common.clone()
    };
    let steps = fanout(&common, 300, &[20], 3, "smoke").await?;
    let lost: u64 = steps.iter().map(|s| s.lost + s.duplicates).sum();
    let delivered = steps.iter().all(|s| s.deliveries_per_s > 0.0);
    if lost > 0 || !delivered {
        return Err(format!(
            "smoke failed: {lost} lost or duplicated, delivered: {delivered}"
        ));
    }
    println!("smoke: ok, nothing lost or duplicated");
    Ok(())
}
