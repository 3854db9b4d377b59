//! Opening a model, swapping one in atomically, activating a version (recorded in the model
//! folder's `active` file) and following what another replica activated; the catalog facts;
//! what the active model is.

use crate::loaded::{Loaded, State};
use crate::{Engine, Error, Result};
use arc_swap::ArcSwap;
use marquee_domain::{Item, ItemId};
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Engine {
    /// Loads the model `path` names, with the catalog's facts.
    pub fn open(path: &Path, catalog: Vec<Item>) -> Result<Self> {
        let model = Arc::new(Loaded::load(path)?);
        let state = State::new(model, &catalog);
        Ok(Self {
            state: ArcSwap::from_pointee(state),
            catalog: ArcSwap::from_pointee(catalog),
            followed: std::sync::Mutex::default(),
            placements: ArcSwap::default(),
            purchases: ArcSwap::default(),
        })
    }

    /// Swaps in the model version folder `dir` (see [`Engine::swap`]) and records its name in
    /// the model folder's `active` file (written beside it and renamed), so that a restart and
    /// every replica following the folder serve it too. Returns the new version.
    pub fn activate(&self, dir: &Path) -> Result<String> {
        let mut followed = self.followed.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.swap(dir)?;
        let (Some(root), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(Error::Pointer {
                path: dir.to_owned(),
                message: "a model version folder must sit in a model folder".into(),
            });
        };
        let pointer = root.join(marquee_models::artifact::ACTIVE);
        let fail = |e: std::io::Error| Error::Pointer {
            path: pointer.clone(),
            message: format!("cannot write it: {e}; this replica serves {version}, others do not"),
        };
        let tmp = root.join(format!(".active.{}", std::process::id()));
        std::fs::write(&tmp, name.as_encoded_bytes())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &pointer))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                fail(e)
            })?;
        let modified = std::fs::metadata(&pointer)
            .and_then(|m| m.modified())
            .map_err(fail)?;
        *followed = Some((name.to_string_lossy().into_owned(), modified));
        Ok(version)
    }

    /// Swaps in the version the model folder's `active` file names when it changed since the
    /// last look and differs from the one served: how a replica learns of an activation made
    /// through another. Returns the new version when it swapped; a version that fails to load
    /// is reported once (until the file is written again) and the current one keeps serving.
    pub fn follow_active(&self) -> Result<Option<String>> {
        let dir = self.model_dir();
        let Some(root) = dir.parent() else {
            return Ok(None);
        };
        let pointer = root.join(marquee_models::artifact::ACTIVE);
        let fail = |e: std::io::Error| Error::Pointer {
            path: pointer.clone(),
            message: format!("cannot read it: {e}"),
        };
        let modified = match std::fs::metadata(&pointer) {
            Ok(m) => m.modified().map_err(fail)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        let mut followed = self.followed.lock().unwrap_or_else(|p| p.into_inner());
        let name = std::fs::read_to_string(&pointer)
            .map_err(fail)?
            .trim()
            .to_owned();
        if followed.as_ref() == Some(&(name.clone(), modified)) {
            return Ok(None);
        }
        *followed = Some((name.clone(), modified));
        if dir
            .file_name()
            .is_some_and(|served| served == name.as_str())
        {
            return Ok(None);
        }
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(Error::Pointer {
                path: pointer.clone(),
                message: format!("{name:?} is not a version name"),
            });
        }
        self.swap(&root.join(&name)).map(Some)
    }

    /// Loads the model `path` names and makes it the active one; on any error the current
    /// model stays active. Returns the new version.
    pub fn swap(&self, path: &Path) -> Result<String> {
        let model = Arc::new(Loaded::load(path)?);
        let version = model.artifact.manifest.version.clone();
        let catalog = self.catalog.load_full();
        self.state.store(Arc::new(State::new(model, &catalog)));
        tracing::info!(%version, "model swapped in");
        Ok(version)
    }

    /// The catalog item of an id (for answers that include item details).
    pub fn catalog_item(&self, id: &str) -> Option<Item> {
        let state = self.state.load();
        let pos = *state.facts.catalog_pos.get(state.fact_index(id)?)?;
        let catalog = self.catalog.load();
        catalog
            .get(pos as usize)
            .filter(|i| i.id.as_str() == id)
            .cloned()
            .or_else(|| catalog.iter().find(|i| i.id.as_str() == id).cloned())
    }

    /// Replaces the catalog facts (stock, visibility, categories, prices).
    pub fn set_catalog(&self, catalog: Vec<Item>) {
        let model = self.state.load().model.clone();
        let state = State::new(model, &catalog);
        self.catalog.store(Arc::new(catalog));
        self.state.store(Arc::new(state));
    }

    /// The active model's version.
    pub fn version(&self) -> String {
        self.state.load().model.artifact.manifest.version.clone()
    }

    /// The active model's kind (`ease`, `als`, ...).
    pub fn kind(&self) -> String {
        self.state.load().model.artifact.manifest.kind.clone()
    }

    /// The active model's folder.
    pub fn model_dir(&self) -> PathBuf {
        self.state.load().model.dir.clone()
    }

    /// The time of the newest interaction the active model was trained on: only events after
    /// it change an answer.
    pub fn trained_until(&self) -> marquee_domain::Timestamp {
        let ms = self.state.load().model.trained_until;
        marquee_domain::Timestamp::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// The ids of the users in the active model's training data, in its row order.
    pub fn user_ids(&self) -> Vec<String> {
        self.state
            .load()
            .model
            .artifact
            .history
            .users
            .ids()
            .to_vec()
    }

    /// Whether the active model knows the item.
    pub fn knows_item(&self, item: &ItemId) -> bool {
        self.state
            .load()
            .model
            .artifact
            .history
            .items
            .get(item.as_str())
            .is_some()
    }
}
