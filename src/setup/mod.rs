//! First run: what takes a new installation from `aiworklab serve` to a
//! configured appliance with a signed-in admin. The single-use setup link
//! that creates the first admin (`link`), the setup checklist the admin page
//! and `aiworklab config check` both show (`checklist`), and the lines
//! `serve` prints at start (`banner`).

pub mod banner;
pub mod checklist;
pub mod link;
