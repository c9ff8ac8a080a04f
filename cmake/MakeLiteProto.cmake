# Copies a .proto file and asks protoc for the lite runtime in the copy (cmake -P script).
file(READ ${IN} text)
file(WRITE ${OUT} "${text}\noption optimize_for = LITE_RUNTIME;\n")
