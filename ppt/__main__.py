from ppt.cli import main

main()
