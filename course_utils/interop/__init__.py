"""Weight maps between the course's models and the libraries' own: ``hf_vit`` (transformers' ViT),
``clip_formats`` (openai ``clip`` and transformers' ``CLIPModel``), ``torch_nn`` (``nn.TransformerEncoderLayer``)."""
