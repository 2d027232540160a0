//! The declarative model: flow files, answer sets, band tables, the services
//! directory and the bot's own settings, loaded from one directory and checked.

pub mod check;
pub mod decode;
pub mod expr;
pub mod load;
pub mod model;
pub mod node;
pub mod reviews;
pub mod schema;

pub use load::{LoadError, load_dir};
pub use model::Bundle;
