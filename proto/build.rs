//! Compiles `tufd/v1/*.proto` with the system `protoc` (Debian
//! `protobuf-compiler`, installed by `scripts/setup`). Set `PROTOC` to use
//! another one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=tufd");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Malformed messages are INVALID_ARGUMENT (src/codec.rs).
        .codec_path("crate::codec::ProtoCodec")
        .compile_protos(&["tufd/v1/tufd.proto"], &["."])?;
    Ok(())
}
