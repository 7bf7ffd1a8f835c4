"""Training recipes (names and what they do: read by the CLI's --help without loading the training code)."""

RECIPES = {
    "default": "AdamW (lr --lr, weight decay 1e-4), one-cycle schedule, small shifts and exposure changes "
               "(the demo's recipe)",
    "paper": "Adam at a constant 7e-5 (Arun et al. 2021). The paper does not state its augmentations in the "
             "text available to us, so this recipe applies none; early stopping on validation AUC as always",
}
PAPER_LR = 7e-5
