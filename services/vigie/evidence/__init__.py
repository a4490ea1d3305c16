"""Evidence: incidents' clips and snapshots kept in the evidence store under legal holds, destroyed on time."""
