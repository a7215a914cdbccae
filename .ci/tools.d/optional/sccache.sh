# `cargo xtask bench ci` (crates/xtask-bench/src/sccache.rs) compares with sccache as
# `RUSTC_WRAPPER`, its shared cache on nginx WebDAV (nginx: the `remote-cache` group; sccache
# needs PROPFIND, from Debian's dav-ext module, or it opens the cache read-only). Debian's
# package is a 0.4.0 pre-release, so the current release is built from crates.io, with the
# WebDAV backend only (several minutes on 2 cores). Optional: only `bash .ci/install-tools
# sccache` installs it; CI runs no benchmark.
apt_install libnginx-mod-http-dav-ext
if [ ! -x "$CI_TOOLS/sccache/bin/sccache" ]; then
    cargo install sccache --version 0.19.0 --locked --no-default-features --features webdav \
        --root "$CI_TOOLS/sccache" --target-dir "$CI_TOOLS/sccache/build"
    rm -rf "$CI_TOOLS/sccache/build"
fi
link_tool sccache "$CI_TOOLS/sccache/bin/sccache"
require sccache
