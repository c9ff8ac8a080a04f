# monocri_add_fuzz_target(NAME LIBRARY [SEEDS dir...]): a fuzz target tests/fuzz/NAME.cpp linked
# with LIBRARY. With -DMONOCRI_FUZZ=ON (clang) it is a libFuzzer binary (`make fuzz`); otherwise
# it is built with a standalone driver and `make test` runs it over tests/fuzz/seeds/NAME (and
# any extra SEEDS dirs) and 20 000 random inputs.
add_custom_target(fuzz-targets)
function(monocri_add_fuzz_target name library)
  cmake_parse_arguments(PARSE_ARGV 2 FUZZ "" "" "SEEDS")
  set(dir ${CMAKE_SOURCE_DIR}/tests/fuzz)
  if(MONOCRI_FUZZ)
    add_executable(${name} ${dir}/${name}.cpp)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(${name} ${dir}/${name}.cpp ${dir}/StandaloneFuzzMain.cpp)
    add_test(NAME ${name} COMMAND ${name} --random 20000 ${dir}/seeds/${name} ${FUZZ_SEEDS})
    set_tests_properties(${name} PROPERTIES LABELS fuzz)
  endif()
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
  target_link_libraries(${name} PRIVATE ${library})
  target_compile_options(${name} PRIVATE ${MONOCRI_WARNINGS})
  add_dependencies(fuzz-targets ${name})
endfunction()
