# train/tokenizer.mk: tokenizer and chat templates (library train/libtok.a).
