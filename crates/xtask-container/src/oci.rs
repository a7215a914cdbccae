//! Daemonless, reproducible OCI image assembly: one layer holding the app's binary, on
//! `scratch` or on a base image read from a local OCI layout, written as an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/...`) and as a `docker load`-able archive.
//!
//! Reproducible by construction: layer entries are sorted with a fixed mtime (the image's
//! `created` time, from SOURCE_DATE_EPOCH or the app's last commit), numeric owner 0:0 and no
//! user/group names; gzip headers carry no mtime or file name; every JSON document is written
//! with sorted keys (oci-spec uses hash maps, and serde_json's `preserve_order` is on).
//! [`assemble`] does no IO besides reading the base layout; writing is [`write_layout`] and
//! [`write_docker_archive`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType, Os, RootFsBuilder,
};
use serde::Serialize;
use xtask_util::timefmt::rfc3339;
use xtask_util::{sha256_hex, write_atomically};

/// The annotation naming a manifest's tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What goes into an image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The app's name; the binary lands in `/app/<name>`.
    pub app: String,
    /// The static binary's bytes.
    pub binary: Vec<u8>,
    /// The tag written into `index.json` and the docker archive (`<repository>:<tag>`).
    pub repository: String,
    pub tag: String,
    /// Seconds since the epoch: the image's `created` time and every layer entry's mtime.
    pub created_epoch: u64,
    /// `uid:gid` the container runs as (never root).
    pub user: String,
    pub port: u16,
    /// `NAME=value` pairs, in the image config's order.
    pub env: Vec<String>,
    /// Image config labels and manifest annotations (`org.opencontainers.image.*`).
    pub annotations: BTreeMap<String, String>,
    /// A base image (its layers go first), or `None` for `scratch`.
    pub base: Option<BaseImage>,
}

/// A base image read from a local OCI layout.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub layout: PathBuf,
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

/// An assembled image: every blob by digest, and the digests that matter.
#[derive(Debug, Clone)]
pub struct Image {
    /// New blobs (config, layer, manifest) by `sha256:<hex>`.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Base layers to copy from the base layout (digest -> path of the blob there).
    pub base_blobs: BTreeMap<String, PathBuf>,
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    /// Every layer's digest, base layers first.
    pub layer_digests: Vec<String>,
    pub repository: String,
    pub tag: String,
}

/// Reads the manifest tagged `tag` (or the only one) from an OCI layout.
pub fn read_base(layout: &Path, tag: Option<&str>) -> anyhow::Result<BaseImage> {
    let index_path = layout.join("index.json");
    let index: ImageIndex = serde_json::from_slice(
        &std::fs::read(&index_path)
            .with_context(|| format!("failed to read `{}`", index_path.display()))?,
    )
    .with_context(|| format!("`{}` is not an OCI image index", index_path.display()))?;
    let manifests = index.manifests();
    let chosen = match tag {
        Some(tag) => manifests.iter().find(|m| {
            m.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|name| name == tag)
        }),
        None if manifests.len() == 1 => manifests.first(),
        None => bail!(
            "`{}` holds {} images: name one as DIR:TAG",
            layout.display(),
            manifests.len()
        ),
    }
    .with_context(|| {
        format!(
            "no image tagged {:?} in `{}`",
            tag.unwrap_or_default(),
            index_path.display()
        )
    })?;
    let manifest_digest = chosen.digest().to_string();
    let manifest: ImageManifest = serde_json::from_slice(&read_blob(layout, &manifest_digest)?)
        .with_context(|| format!("blob {manifest_digest} is not an OCI image manifest"))?;
    let config_digest = manifest.config().digest().to_string();
    let config: ImageConfiguration = serde_json::from_slice(&read_blob(layout, &config_digest)?)
        .with_context(|| format!("blob {config_digest} is not an OCI image config"))?;
    Ok(BaseImage {
        layout: layout.to_path_buf(),
        manifest_digest,
        manifest,
        config,
    })
}

/// Builds the layer, config and manifest of `spec`.
pub fn assemble(spec: &ImageSpec) -> anyhow::Result<Image> {
    let layer_tar = app_layer(&spec.app, &spec.binary, spec.created_epoch)?;
    let diff_id = sha256_digest(&layer_tar);
    let layer = gzip(&layer_tar)?;
    let layer_digest = sha256_digest(&layer);

    let created = rfc3339(
        i64::try_from(spec.created_epoch).context("the image's creation time is out of range")?,
    );
    let (mut diff_ids, mut history, mut layers, base_blobs, mut env) = match &spec.base {
        Some(base) => {
            let layers: Vec<Descriptor> = base.manifest.layers().clone();
            let base_blobs = layers
                .iter()
                .map(|l| {
                    let digest = l.digest().to_string();
                    let path = blob_path(&base.layout, &digest)?;
                    Ok((digest, path))
                })
                .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
            let env = base
                .config
                .config()
                .as_ref()
                .and_then(|c| c.env().clone())
                .unwrap_or_default();
            (
                base.config.rootfs().diff_ids().clone(),
                base.config.history().clone().unwrap_or_default(),
                layers,
                base_blobs,
                env,
            )
        }
        None => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            BTreeMap::new(),
            Vec::new(),
        ),
    };
    diff_ids.push(diff_id);
    history.push(
        HistoryBuilder::default()
            .created(created.clone())
            .created_by(format!("cargo xtask image {}", spec.app))
            .build()?,
    );
    layers.push(descriptor(
        MediaType::ImageLayerGzip,
        &layer_digest,
        layer.len(),
        None,
    )?);
    // The image's variables win over the base's of the same name.
    env.retain(|kv| {
        let name = kv.split('=').next().unwrap_or_default();
        !spec
            .env
            .iter()
            .any(|ours| ours.split('=').next() == Some(name))
    });
    env.extend(spec.env.iter().cloned());

    let config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .user(spec.user.clone())
                .exposed_ports(vec![format!("{}/tcp", spec.port)])
                .env(env)
                .entrypoint(vec![format!("/app/{}", spec.app)])
                .working_dir("/")
                .labels(
                    spec.annotations
                        .clone()
                        .into_iter()
                        .collect::<std::collections::HashMap<_, _>>(),
                )
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()?,
        )
        .history(history)
        .build()?;
    let config_json = canonical_json(&config)?;
    let config_digest = sha256_digest(&config_json);

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_json.len(),
            None,
        )?)
        .layers(layers.clone())
        .annotations(
            spec.annotations
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()?;
    let manifest_json = canonical_json(&manifest)?;
    let manifest_digest = sha256_digest(&manifest_json);

    let mut blobs = BTreeMap::new();
    blobs.insert(layer_digest, layer);
    blobs.insert(config_digest.clone(), config_json);
    let manifest_size = manifest_json.len() as u64;
    blobs.insert(manifest_digest.clone(), manifest_json);
    Ok(Image {
        blobs,
        base_blobs,
        manifest_digest,
        manifest_size,
        config_digest,
        layer_digests: layers.iter().map(|l| l.digest().to_string()).collect(),
        repository: spec.repository.clone(),
        tag: spec.tag.clone(),
    })
}

impl Image {
    /// The bytes of a blob, new or from the base layout.
    pub fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        match self.blobs.get(digest) {
            Some(bytes) => Ok(bytes.clone()),
            None => {
                let path = self
                    .base_blobs
                    .get(digest)
                    .with_context(|| format!("internal error: unknown blob {digest}"))?;
                std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
            }
        }
    }

    /// The manifest's bytes.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.blobs[&self.manifest_digest]
    }

    /// `index.json`: the manifest, tagged.
    pub fn index_json(&self) -> anyhow::Result<Vec<u8>> {
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(REF_NAME.to_string(), self.tag.clone());
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![descriptor(
                MediaType::ImageManifest,
                &self.manifest_digest,
                self.manifest_size as usize,
                Some(annotations),
            )?])
            .build()?;
        canonical_json(&index)
    }

    /// Every file of the OCI layout, as (relative path, bytes), sorted by path.
    pub fn layout_files(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        files.insert(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        );
        files.insert("index.json".into(), self.index_json()?);
        for digest in self.blobs.keys().chain(self.base_blobs.keys()) {
            files.insert(blob_relative_path(digest)?, self.blob(digest)?);
        }
        Ok(files.into_iter().collect())
    }
}

/// Writes the OCI layout into `dir`, replacing whatever was there (through a temporary sibling
/// directory and renames, so `dir` is never half-written).
pub fn write_layout(image: &Image, dir: &Path) -> anyhow::Result<()> {
    let parent = dir.parent().context("an image directory needs a parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".oci-")
        .tempdir_in(parent)
        .with_context(|| format!("failed to create a directory in `{}`", parent.display()))?;
    for (relative, bytes) in image.layout_files()? {
        let path = staging.path().join(&relative);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)
                .with_context(|| format!("failed to create `{}`", p.display()))?;
        }
        std::fs::write(&path, bytes)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    replace_dir(staging.keep(), dir)
}

/// Writes a `docker load`-able archive: the OCI layout plus Docker's `manifest.json` and
/// `repositories`, entries sorted, fixed mtime, through a temporary file and a rename.
pub fn write_docker_archive(image: &Image, path: &Path, mtime: u64) -> anyhow::Result<()> {
    let mut files: BTreeMap<String, Vec<u8>> = image.layout_files()?.into_iter().collect();
    let blob_file = |digest: &str| blob_relative_path(digest);
    let docker_manifest = serde_json::json!([{
        "Config": blob_file(&image.config_digest)?,
        "RepoTags": [format!("{}:{}", image.repository, image.tag)],
        "Layers": image.layer_digests.iter().map(|d| blob_file(d)).collect::<anyhow::Result<Vec<_>>>()?,
    }]);
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&docker_manifest)?,
    );
    let repositories = serde_json::json!({
        image.repository.clone(): { image.tag.clone(): image.manifest_digest.trim_start_matches("sha256:") }
    });
    files.insert("repositories".into(), serde_json::to_vec(&repositories)?);

    let mut builder = tar::Builder::new(Vec::new());
    let mut directories = std::collections::BTreeSet::new();
    for relative in files.keys() {
        let mut prefix = String::new();
        for part in relative
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d)
            .unwrap_or(&[])
        {
            prefix.push_str(part);
            prefix.push('/');
            directories.insert(prefix.clone());
        }
    }
    let mut entries: BTreeMap<String, Option<&Vec<u8>>> = BTreeMap::new();
    for dir in &directories {
        entries.insert(dir.clone(), None);
    }
    for (relative, bytes) in &files {
        entries.insert(relative.clone(), Some(bytes));
    }
    for (name, bytes) in entries {
        match bytes {
            None => append_dir(&mut builder, &name, mtime)?,
            Some(bytes) => append_file(&mut builder, &name, bytes, 0o644, mtime)?,
        }
    }
    let archive = builder
        .into_inner()
        .context("failed to finish the docker archive")?;
    Ok(write_atomically(path, &archive)?)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Serializes with every object's keys sorted, compact: the same value gives the same bytes.
pub fn canonical_json(value: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    fn sort(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let value = serde_json::to_value(value).context("failed to encode JSON")?;
    Ok(serde_json::to_vec(&sort(value))?)
}

fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: usize,
    annotations: Option<std::collections::HashMap<String, String>>,
) -> anyhow::Result<Descriptor> {
    let mut builder = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(Digest::from_str(digest)?)
        .size(size as u64);
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    Ok(builder.build()?)
}

/// The uncompressed layer: `app/` and `app/<name>` (mode 0755), owned by 0:0.
fn app_layer(app: &str, binary: &[u8], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::with_capacity(binary.len() + 4096));
    append_dir(&mut builder, "app/", mtime)?;
    append_file(&mut builder, &format!("app/{app}"), binary, 0o755, mtime)?;
    builder.into_inner().context("failed to finish the layer")
}

fn header(size: u64, mode: u32, mtime: u64, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(kind);
    header
}

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, name: &str, mtime: u64) -> anyhow::Result<()> {
    let mut header = header(0, 0o755, mtime, tar::EntryType::Directory);
    builder
        .append_data(&mut header, name, std::io::empty())
        .with_context(|| format!("failed to add `{name}` to a tar"))
}

fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &str,
    bytes: &[u8],
    mode: u32,
    mtime: u64,
) -> anyhow::Result<()> {
    let mut header = header(bytes.len() as u64, mode, mtime, tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, bytes)
        .with_context(|| format!("failed to add `{name}` to a tar"))
}

/// gzip without a file name or mtime in the header (mtime 0, OS "unknown").
fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(bytes.len() / 2), Compression::fast());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn blob_relative_path(digest: &str) -> anyhow::Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest {digest:?}"))?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn blob_path(layout: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    Ok(layout.join(blob_relative_path(digest)?))
}

fn read_blob(layout: &Path, digest: &str) -> anyhow::Result<Vec<u8>> {
    let path = blob_path(layout, digest)?;
    let bytes =
        std::fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
    anyhow::ensure!(
        sha256_digest(&bytes) == digest,
        "`{}` does not match its digest",
        path.display()
    );
    Ok(bytes)
}

/// Moves `staging` to `dir`: the old `dir` (if any) is renamed aside first, then removed.
fn replace_dir(staging: PathBuf, dir: &Path) -> anyhow::Result<()> {
    let old = dir.with_extension(format!("old-{}", std::process::id()));
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old)
            .with_context(|| format!("failed to move `{}` aside", dir.display()))?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("failed to write `{}`", dir.display()))?;
    if had_old {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("failed to remove `{}`", old.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImageSpec {
        ImageSpec {
            app: "demo".into(),
            binary: b"#!not really a binary\n".repeat(100),
            repository: "demo".into(),
            tag: "1.0.0".into(),
            created_epoch: 1_700_000_000,
            user: "65532:65532".into(),
            port: 8080,
            env: vec!["PORT=8080".into(), "RUST_LOG=info".into()],
            annotations: [
                ("org.opencontainers.image.version", "1.0.0"),
                ("org.opencontainers.image.revision", "abc"),
                ("org.opencontainers.image.title", "demo"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            base: None,
        }
    }

    #[test]
    fn the_same_spec_gives_the_same_digests_and_a_change_does_not() {
        let first = assemble(&spec()).unwrap();
        let second = assemble(&spec()).unwrap();
        assert_eq!(first.manifest_digest, second.manifest_digest);
        assert_eq!(first.blobs, second.blobs);
        let mut changed = spec();
        changed.binary.push(b'!');
        assert_ne!(
            assemble(&changed).unwrap().manifest_digest,
            first.manifest_digest
        );
    }

    #[test]
    fn the_layer_has_numeric_root_owners_a_fixed_mtime_and_a_plain_gzip_header() {
        let image = assemble(&spec()).unwrap();
        let layer = image.blob(&image.layer_digests[0]).unwrap();
        // gzip: magic, deflate, no flags (no name), mtime 0, OS 255.
        assert_eq!(&layer[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&layer[4..8], &[0, 0, 0, 0]);
        assert_eq!(layer[9], 255);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&layer[..]));
        let entries: Vec<(String, u64, u64, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("app/".into(), 0, 0, 1_700_000_000, 0o755),
                ("app/demo".into(), 0, 0, 1_700_000_000, 0o755)
            ]
        );
    }

    #[test]
    fn the_config_runs_as_non_root_with_sorted_keys() {
        let image = assemble(&spec()).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&image.blobs[&image.config_digest]).unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/app/demo");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        let text = String::from_utf8(image.blobs[&image.config_digest].clone()).unwrap();
        let labels = text.find("\"Labels\"").unwrap();
        let revision = text[labels..].find("revision").unwrap();
        let title = text[labels..].find("title").unwrap();
        assert!(revision < title, "{text}");
    }
}
