from ppt.bench.cli import main

main()
