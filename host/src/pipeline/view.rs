//! One feature view's processing, independent of where its events come from:
//! input batch → Wasm transform → schema check → online rows.

use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::aggregate::WindowPlan;
use crate::online::{KeyBuilder, OnlineRow, RowFailure, ViewFields, build_rows, newest_per_entity};
use crate::repo::{FeatureRepo, FeatureView, Source};
use crate::transform::cache::ModuleCache;
use crate::transform::{
    CheckedBatch, Limits, Rejected, TransformEngine, TransformError, TransformModule, Transformer,
    ViewSchema,
};

/// What a view needs at run time, resolved once from the repo.
#[derive(Clone)]
pub struct ViewPipeline {
    /// The repo's project: the key space the view writes to.
    pub project: String,
    pub view: FeatureView,
    pub source: Source,
    pub schema: ViewSchema,
    pub transformer: Option<Transformer>,
    pub keys: KeyBuilder,
    pub fields: ViewFields,
    /// The view's windowed aggregations, when it declares any.
    pub window: Option<Arc<WindowPlan>>,
    version: String,
}

/// A batch transformed and checked, ready to write.
pub struct TransformedBatch {
    pub checked: CheckedBatch,
    /// Input rows the transform refused.
    pub rejected: Vec<Rejected>,
}

impl ViewPipeline {
    /// Resolves `view` and loads its module (compiled, cached, linked).
    pub fn new(
        repo: &FeatureRepo,
        view: &FeatureView,
        engine: &TransformEngine,
        cache: &ModuleCache,
        limits: &Limits,
    ) -> Result<Self, TransformError> {
        let source = repo.source(&view.source).cloned().ok_or_else(|| {
            TransformError::Input(format!(
                "view `{}`: source `{}` is not in the repo",
                view.name, view.source
            ))
        })?;
        let transformer = match &view.transform {
            Some(spec) => {
                let module = TransformModule::load(engine, cache, &spec.module, limits)?;
                Some(Transformer::new(
                    Arc::new(module),
                    spec.config.clone(),
                    limits.clone(),
                    &view.name,
                ))
            }
            None => None,
        };
        let join_keys: Vec<String> = view.join_keys.iter().map(|k| k.name.clone()).collect();
        let key_version = repo
            .config
            .key_version()
            .unwrap_or(crate::types::KeyVersion::V3);
        Ok(Self {
            version: version_id(view, &source, transformer.as_ref()),
            project: repo.project().to_string(),
            schema: ViewSchema::for_view(view, &source),
            window: match &view.windowing {
                Some(windowing) => {
                    let topic = match &source.kind {
                        crate::repo::SourceKind::Kafka(kafka) => kafka.topic.as_str(),
                        _ => "",
                    };
                    let plan = WindowPlan::new(windowing)
                        .map_err(|e| TransformError::Input(e.to_string()))?
                        .for_source(topic);
                    Some(Arc::new(plan))
                }
                None => None,
            },
            keys: KeyBuilder::new(key_version, &join_keys, repo.project()),
            fields: ViewFields::of(view),
            view: view.clone(),
            source,
            transformer,
        })
    }

    /// The same view with another transform module, configured as the view says.
    pub fn with_module(&self, module: Arc<TransformModule>, limits: &Limits) -> Self {
        let config = self
            .view
            .transform
            .as_ref()
            .map(|t| t.config.clone())
            .unwrap_or_default();
        let transformer = Transformer::new(module, config, limits.clone(), &self.view.name);
        Self {
            version: version_id(&self.view, &self.source, Some(&transformer)),
            transformer: Some(transformer),
            ..self.clone()
        }
    }

    /// The columns every decoded event must have: the join keys and the
    /// event time, as the view names them.
    pub fn required_columns(&self) -> Vec<String> {
        self.schema
            .join_keys
            .iter()
            .map(|k| k.name.clone())
            .chain(std::iter::once(self.source.timestamp_field.clone()))
            .collect()
    }

    /// The transform module serving this view, if it has a transform.
    pub fn module(&self) -> Option<&Arc<TransformModule>> {
        self.transformer.as_ref().map(Transformer::module)
    }

    /// This version's id: 12 hex digits over the module's content hash, the
    /// transform config and the view's definition, so any change a deploy or
    /// an apply makes shows as a new id.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs the transform (if any) and checks its output. Blocking.
    pub fn transform(&self, input: &RecordBatch) -> Result<TransformedBatch, TransformError> {
        let (output, rejected) = match &self.transformer {
            Some(t) => {
                let out = t.run(input)?;
                (out.batch, out.rejected)
            }
            None => (input.clone(), Vec::new()),
        };
        let checked = self.schema.check(&output)?;
        Ok(TransformedBatch { checked, rejected })
    }

    /// Who the view's dead letters are from: project, view, version, module.
    pub fn dead_letter_context(&self) -> crate::pipeline::dead_letter::DeadLetterContext<'_> {
        crate::pipeline::dead_letter::DeadLetterContext {
            project: &self.project,
            view: &self.view.name,
            version: self.version(),
            module: self.module().map(|m| m.hash.as_str()),
        }
    }

    /// Online rows of a checked batch, newest per entity, and the rows that cannot be written.
    pub fn online_rows(&self, checked: &CheckedBatch) -> (Vec<OnlineRow>, Vec<RowFailure>) {
        let (rows, failures) = build_rows(checked, &self.schema, &self.keys);
        (newest_per_entity(rows), failures)
    }
}

impl ViewPipeline {
    /// The schema of the batches this view's transform receives, when the
    /// source declares one (Kafka JSON); `None` for sources known only at read time.
    pub fn input_schema(&self) -> Option<Arc<arrow_schema::Schema>> {
        match &self.source.kind {
            crate::repo::SourceKind::Kafka(kafka) => Some(Arc::new(crate::repo::mapped_schema(
                kafka.format.schema(),
                &self.source.field_mapping,
            ))),
            _ => None,
        }
    }

    /// Checks the view end to end on a synthetic batch of its input schema:
    /// the module runs, and its output carries the declared columns and types.
    /// Returns the number of output rows, or `None` when the input schema is unknown.
    pub fn probe(&self) -> Result<Option<usize>, TransformError> {
        let Some(schema) = self.input_schema() else {
            return Ok(None);
        };
        let input = crate::transform::probe::probe_batch(&schema)
            .map_err(|e| TransformError::Input(e.to_string()))?;
        Ok(Some(self.transform(&input)?.checked.rows))
    }
}

fn version_id(view: &FeatureView, source: &Source, transformer: Option<&Transformer>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    if let Some(transformer) = transformer {
        hasher.update(transformer.module().hash.as_bytes());
    }
    hasher.update(format!("{view:?}\n{source:?}").as_bytes());
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}
