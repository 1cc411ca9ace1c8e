/// Input rows a transform leaves out of its output on purpose.
///
/// The host dead-letters the original event behind each rejected row, with
/// the reason, and still writes every other row of the batch.
#[derive(Debug, Default)]
pub struct Rejections {
    rows: Vec<(u32, String)>,
}

impl Rejections {
    /// Marks input row `row` (0-based index in the input batch) as rejected.
    pub fn reject(&mut self, row: usize, reason: impl Into<String>) {
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        self.rows.push((row, reason.into()));
    }

    /// How many rows were rejected so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was rejected.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rejected rows with their reasons.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.rows
            .iter()
            .map(|(row, reason)| (*row, reason.as_str()))
    }

    pub(crate) fn into_rows(self) -> Vec<(u32, String)> {
        self.rows
    }
}
