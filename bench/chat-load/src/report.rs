//! Where each workload writes its figures: `target/bench/<name>-<store>.json`,
//! which `plot` reads.

use crate::{Common, Store};
use serde::Serialize;
use serde_json::json;

pub fn write_json<T: Serialize>(name: &str, common: &Common, rows: &T) -> Result<(), String> {
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let store = match common.store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    };
    let path = dir.join(format!("{name}-{store}.json"));
    let text =
        serde_json::to_string_pretty(&json!({"workload": name, "store": store, "rows": rows}))
            .map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    println!("wrote {}", path.display());
    Ok(())
}
