"""Model code: the MMAudio flow network, its encoders (CLIP, Synchformer), VAE, mel, vocoders."""
