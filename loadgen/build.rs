//! Compiles the echo baseline's proto with protox (pure Rust, no system `protoc`),
//! the same way the `proto` crate compiles payvault's contract.

const PROTOS: &[&str] = &["echo.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    for p in PROTOS {
        println!("cargo:rerun-if-changed=proto/{p}");
    }
    Ok(())
}
