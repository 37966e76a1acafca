# store/import.mk: the dataset import parsers (part of the store library).
