"""Training recipes (names and what they do: read by the CLI's --help without loading the training code)."""

RECIPES = {
    "default": "AdamW (lr --lr, weight decay 0.05), one-cycle schedule, small shifts and exposure changes, "
               "the weights averaged (EMA 0.95 per step) and the average validated and kept "
               "(the demo's recipe)",
    "paper": "Adam at a constant 7e-5 (Arun et al. 2021). The paper does not state its augmentations in the "
             "text available to us, so this recipe applies none; early stopping on validation AUC as always",
}
PAPER_LR = 7e-5
