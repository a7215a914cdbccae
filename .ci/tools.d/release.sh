# Tools of the `cargo xtask release` tests: git (the tool drives it), GNU tar (lists archives
# with numeric owners and full times) and sha256sum (checks SHA256SUMS).
apt_install git tar coreutils
require git tar sha256sum
