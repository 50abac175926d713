//! The plan a plugin declares before any data moves.

use crate::bindings::crypto_etl::plugin::types::{self as wire, ColumnType};

/// What a plugin will read, write and remove, and whether it may drop rows.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    reads: Vec<wire::ColumnRead>,
    writes: Vec<wire::ColumnWrite>,
    removes: Vec<String>,
    drops_rows: bool,
}

impl Plan {
    pub fn new() -> Self {
        Self::default()
    }

    /// The plugin reads column `name`, which must have type `ty`.
    pub fn reads(mut self, name: &str, ty: ColumnType) -> Self {
        self.reads.push(wire::ColumnRead { name: name.to_owned(), type_: ty });
        self
    }

    /// The plugin writes a new column `name` of type `ty`.
    pub fn writes(mut self, name: &str, ty: ColumnType, description: &str) -> Self {
        self.writes.push(wire::ColumnWrite {
            name: name.to_owned(),
            type_: ty,
            description: description.to_owned(),
            replaces: false,
        });
        self
    }

    /// The plugin replaces the existing column `name` with values of type `ty`.
    pub fn replaces(mut self, name: &str, ty: ColumnType, description: &str) -> Self {
        self.writes.push(wire::ColumnWrite {
            name: name.to_owned(),
            type_: ty,
            description: description.to_owned(),
            replaces: true,
        });
        self
    }

    /// The plugin removes column `name` from the batch.
    pub fn removes(mut self, name: &str) -> Self {
        self.removes.push(name.to_owned());
        self
    }

    /// The plugin may reject rows (each with a reason).
    pub fn drops_rows(mut self) -> Self {
        self.drops_rows = true;
        self
    }

    #[doc(hidden)]
    pub fn into_wire(self) -> wire::TransformPlan {
        wire::TransformPlan {
            reads: self.reads,
            writes: self.writes,
            removes: self.removes,
            drops_rows: self.drops_rows,
        }
    }
}
