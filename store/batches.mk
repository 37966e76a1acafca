# store/batches.mk: the batches of dpo-judge --batch (batches.h).
noinst_HEADERS += store/batches.h
store_libstore_a_SOURCES += store/store_batches.c
