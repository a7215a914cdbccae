# Tools of the `cargo xtask release` tests: git (the tool drives it), GNU tar (lists archives
# with numeric owners and full times), sha256sum (checks SHA256SUMS), and for the released
# apps' images Debian's docker-registry (a real OCI registry on loopback, whose access log
# counts manifest pushes) and skopeo (reads the pushed tags and image configs).
apt_install git tar coreutils docker-registry skopeo
link_tool docker-registry /usr/bin/docker-registry
require git tar sha256sum docker-registry skopeo
