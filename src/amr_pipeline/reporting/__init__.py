"""Tables and figures of the paper (Tables 2-3, Figures 1, 3-5) from evaluation outputs."""
